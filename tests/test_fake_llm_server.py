"""The local model server's scripts survive retries: a retry of a request (the same path and
body) gets the reply its earlier attempt got, so a model call Temporal tries again under load
does not take the next turn's reply; a retry after a failure, or after its client left, takes
the next one, as scripts of failures expect. Real SDK clients (through our providers) and raw
sockets over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx2 as httpx
import pytest
from temporalio.exceptions import ApplicationError

from .fake_llm_server import FakeLLMServer, Reply, error, text
from .test_provider_streaming import Recorder
from .test_providers import PROVIDERS, request

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(params=sorted(PROVIDERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_retried_request_gets_the_reply_its_first_attempt_got(
    server: FakeLLMServer, kind: str
) -> None:
    server.reply(text("first"), text("second"))
    provider = PROVIDERS[kind](server)
    first = await provider.complete(request(), "fake-model")
    # The same request again: an activity retried after its reply was sent.
    retried = await provider.complete(request(), "fake-model")
    other = await provider.complete(request(tools=False), "fake-model")
    replies = [r.message.content for r in (first, retried, other)]
    assert replies == ["first", "first", "second"]
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    "failure",
    [error(503, "overloaded"), Reply(text="cut off mid-reply", cut_after=3)],
    ids=["error", "cut stream"],
)
async def test_a_retry_after_a_failure_takes_the_next_reply(
    server: FakeLLMServer, kind: str, failure: Reply
) -> None:
    server.reply(failure, text("whole"))
    provider = PROVIDERS[kind](server)
    with pytest.raises(ApplicationError):
        await provider.complete(request(), "fake-model", Recorder())
    retried = await provider.complete(request(), "fake-model", Recorder())
    assert retried.message.content == "whole"


async def test_a_retry_after_the_client_left_mid_call_takes_the_next_reply(
    server: FakeLLMServer,
) -> None:
    """As when the worker making the call is killed: its socket closes while the model
    thinks."""
    server.reply(text("lost with the worker", delay=60), text("thought it through"))
    data = json.dumps(BODY).encode()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as killed:
        killed.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: fake\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data)
        )

        async def taken() -> bool:
            return len(server.requests) == 1

        for _ in range(600):  # bounded: the server reads the request in milliseconds
            if await taken():
                break
            await asyncio.sleep(0.05)
    # The socket is closed: the server notices while it thinks, not after its 60 s.
    assert await asyncio.to_thread(server.requests[0].disconnected.wait, 30)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        retried = await http.post("/v1/chat/completions", json=BODY)
    assert retried.json()["choices"][0]["message"]["content"] == "thought it through"
