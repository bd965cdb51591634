"""The codec server as a user starts it, and the keys the encryption tests share."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from durable_agent.codec_server import TOKEN_VARIABLE
from durable_agent.encryption import KEYS_VARIABLE, generate_key

from .conftest import eventually
from .processes import BIN, free_port, stop

OLD, NEW = f"old:{generate_key()}", f"new:{generate_key()}"


UI = "http://localhost:8233"
TOKEN = secrets.token_urlsafe(16)


class CodecServer:
    """`durable-agent codec-server` as a user starts it, with `KEYS` and a bearer token."""

    def __init__(self, keys: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                str(BIN / "durable-agent"),
                "codec-server",
                "--port",
                str(self.port),
                *("--cors-origin", UI),
            ],
            env={**os.environ, KEYS_VARIABLE: keys, TOKEN_VARIABLE: TOKEN},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def post(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@asynccontextmanager
async def codec_server_running() -> AsyncIterator[CodecServer]:
    server = CodecServer(f"{NEW},{OLD}")

    async def serving() -> bool:
        try:
            urllib.request.urlopen(server.url, timeout=1)  # noqa: ASYNC210 - loopback, bounded
        except urllib.error.HTTPError:
            return True  # 404: it answers
        except OSError:
            return False
        return True

    await eventually(serving, f"the codec server on {server.url}")
    yield server
    stop(server.process)
    assert server.process.stdout is not None
    assert TOKEN not in server.process.stdout.read().decode(), "the token stays out of its logs"


def with_base64_decoded(output: str) -> str:
    """JSON text (the CLI's output, a history) with every base64 string decoded beside it
    (latin-1): plaintext hidden in a payload shows up in a plain search."""
    found = [output]

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):  # not base64: already in `output`
                found.append(base64.b64decode(value, validate=True).decode("latin-1"))

    walk(json.loads(output))
    return "\n".join(found)
