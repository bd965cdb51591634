"""The codec server as a user starts it, and the keys the encryption tests share."""

from __future__ import annotations

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
