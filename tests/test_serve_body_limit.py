"""`durable-agent serve` reads no request body over its limit (`DURABLE_AGENT_MAX_BODY_BYTES`,
64 MiB by default): attachments arrive as base64 and are decoded in its process."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator

import httpx2 as httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agent.client import AgentClient
from durable_agent.serve import create_app
from durable_agent.serve.body_limit import DEFAULT_MAX_BODY_BYTES, MAX_BODY_VARIABLE

from .processes import BIN, ROOT
from .test_serve import http_server, one_line_error

LIMIT = 100_000
"""What this file's server is configured with, as a user would set it."""


@pytest.fixture
async def url(dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.setenv(MAX_BODY_VARIABLE, str(LIMIT))
    client = AgentClient(dev_env.client, f"tq-{uuid.uuid4()}")  # no worker: nothing may start
    async with http_server(create_app(client)) as served:
        yield served


def start(prompt: str) -> bytes:
    return json.dumps({"agent": "nobody", "prompt": prompt}).encode()


async def test_a_body_over_the_limit_is_a_one_line_413_before_any_route(url: str) -> None:
    big = start("x" * LIMIT)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        declared = await http.post("/runs", content=big)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
            for at in range(0, len(big), 8192):
                yield big[at : at + 8192]

        streamed = await http.post("/runs", content=chunks())
        small = await http.post("/runs", content=start("hello"))

    for refused in (declared, streamed):
        line = one_line_error(refused, 413)
        assert f"over {LIMIT:,} bytes ({MAX_BODY_VARIABLE})" in line, line
    # Under the limit the route reads it: no such agent on this queue is the route's own answer.
    assert small.status_code != 413, small.text


def test_the_default_leaves_room_for_a_providers_largest_document() -> None:
    assert DEFAULT_MAX_BODY_BYTES >= 32 * 1024 * 1024 * 4 // 3  # a 32 MB PDF as base64


def test_a_malformed_limit_is_a_one_line_cli_error() -> None:
    done = subprocess.run(
        [str(BIN / "durable-agent"), "serve", "--port", "0", "--address", "127.0.0.1:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, MAX_BODY_VARIABLE: "lots"},
        check=False,
    )
    assert done.returncode == 1, done
    expected = f"error: {MAX_BODY_VARIABLE}='lots' must be a positive number of bytes"
    assert done.stderr.strip() == expected, done.stderr
