"""Streamed provider calls with the real `openai` and `anthropic` clients over HTTP to a local
server: the same response as a whole call, deltas on the way, and streams that break."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterator

import pytest
from temporalio.exceptions import ApplicationError

from .fake_llm_server import ARGUMENTS_PIECE, FakeLLMServer, Reply, error, stream_frames
from .test_providers import ENDPOINT, PROVIDERS, request

NAMES = {
    "responses": "OpenAI Responses",
    "chat": "OpenAI Chat Completions",
    "anthropic": "Anthropic",
}

REPLIES = {
    "text": Reply(text="It is sunny in Paris and warm in Rome."),
    "one call": Reply(calls=[("call_1", "weather", '{"city": "Paris"}')]),
    "several calls": Reply(
        calls=[
            ("call_a", "weather", '{"city": "Paris", "units": "metric"}'),
            ("call_b", "weather", '{"city": "Rome"}'),
            ("call_c", "forecast", "{}"),
        ]
    ),
    "text and calls": Reply(
        text="Let me look both up.",
        calls=[
            ("call_a", "weather", '{"city": "Paris"}'),
            ("call_b", "weather", '{"city": "Rome"}'),
        ],
    ),
}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as s:
        yield s


@pytest.fixture(params=sorted(PROVIDERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Recorder:
    """A `DeltaSink` that keeps what it was told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self.started = asyncio.Event()

    def text(self, text: str) -> None:
        self.events.append(("text", text))
        self.started.set()

    def tool_call(self, tool_call_id: str, name: str) -> None:
        self.events.append(("tool_call", tool_call_id, name))
        self.started.set()

    @property
    def texts(self) -> list[str]:
        return [e[1] for e in self.events if e[0] == "text"]


def frames(kind: str, reply: Reply) -> int:
    return len(stream_frames(ENDPOINT[kind], reply, "fake-model", {}))


@pytest.mark.parametrize("shape", sorted(REPLIES))
async def test_a_streamed_reply_equals_the_whole_one(
    server: FakeLLMServer, kind: str, shape: str
) -> None:
    reply = REPLIES[shape]
    server.reply(reply, reply)
    provider = PROVIDERS[kind](server)
    whole = await provider.complete(request(), "fake-model")
    sink = Recorder()
    streamed = await provider.complete(request(), "fake-model", sink)

    assert streamed == whole
    assert whole.message.content == reply.text
    assert [(c.id, c.name) for c in whole.message.tool_calls] == [(i, n) for i, n, _ in reply.calls]
    assert (whole.usage.input_tokens, whole.usage.output_tokens) == (11, 7)
    assert "stream" not in server.requests[0].body and server.requests[1].body["stream"] is True

    split = [len(p) > 1 for p in argument_pieces(kind, reply)]
    assert split == [len(a) > ARGUMENTS_PIECE for _, _, a in reply.calls], "long ones in pieces"

    assert "".join(sink.texts) == (reply.text or "")
    if reply.text:
        assert len(sink.texts) > 1, "the text came in several deltas"
    starts = [e for e in sink.events if e[0] == "tool_call"]
    assert starts == [("tool_call", i, n) for i, n, _ in reply.calls]
    assert sink.events[: len(sink.texts)] == [("text", t) for t in sink.texts], "text, then calls"


async def test_five_streamed_calls_use_one_connection(server: FakeLLMServer, kind: str) -> None:
    """Issue 18: the Responses provider returned at `response.completed`, before the body's
    end, so the SDK closed the connection rather than return it to its pool: a new TCP (and,
    against the real API, TLS) handshake every call."""
    reply = REPLIES["text and calls"]
    server.reply(*[reply] * 5)
    provider = PROVIDERS[kind](server)
    for _ in range(5):
        response = await provider.complete(request(), "fake-model", Recorder())
        assert response.message.content == reply.text
    assert server.connections == 1


@pytest.mark.parametrize("cleanly", [False, True], ids=["dropped", "closed early"])
async def test_a_stream_cut_midway_is_retried(
    server: FakeLLMServer, kind: str, cleanly: bool
) -> None:
    reply = REPLIES["text and calls"]
    server.reply(
        Reply(
            text=reply.text,
            calls=reply.calls,
            cut_after=frames(kind, reply) // 2,
            cut_cleanly=cleanly,
        )
    )
    sink = Recorder()
    with pytest.raises(ApplicationError) as caught:
        await PROVIDERS[kind](server).complete(request(), "fake-model", sink)
    assert not caught.value.non_retryable
    assert caught.value.type == "ProviderStreamCut"
    assert f"{NAMES[kind]} stream was cut" in str(caught.value)
    assert sink.events, "the stream had started"


async def test_an_error_reported_midstream_is_retried(server: FakeLLMServer, kind: str) -> None:
    reply = REPLIES["text and calls"]
    server.reply(
        Reply(
            text=reply.text,
            calls=reply.calls,
            fail_after=frames(kind, reply) // 2,
            error_message="the model is overloaded",
        )
    )
    with pytest.raises(ApplicationError) as caught:
        await PROVIDERS[kind](server).complete(request(), "fake-model", Recorder())
    assert not caught.value.non_retryable
    assert caught.value.type == "ProviderStreamCut"
    assert f"{NAMES[kind]} stream was cut" in str(caught.value)
    assert "the model is overloaded" in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [error(429, "slow down", {"retry-after": "7"}), error(400, "bad tools"), error(503, "busy")],
    ids=["429", "400", "503"],
)
async def test_a_status_error_maps_as_unstreamed(
    server: FakeLLMServer, kind: str, failure: Reply
) -> None:
    server.reply(failure, failure)
    provider = PROVIDERS[kind](server)
    with pytest.raises(ApplicationError) as whole:
        await provider.complete(request(), "fake-model")
    with pytest.raises(ApplicationError) as streamed:
        await provider.complete(request(), "fake-model", Recorder())
    assert server.requests[1].body["stream"] is True
    assert failure.error_message in str(whole.value)
    assert _shape(streamed.value) == _shape(whole.value)
    assert len(server.requests) == 2, "the SDK itself did not retry"


async def test_connection_refused_maps_as_unstreamed(kind: str) -> None:
    with FakeLLMServer() as gone:
        pass  # started and stopped: its port refuses connections now
    provider = PROVIDERS[kind](gone)
    with pytest.raises(ApplicationError) as whole:
        await provider.complete(request(), "fake-model")
    with pytest.raises(ApplicationError) as streamed:
        await provider.complete(request(), "fake-model", Recorder())
    assert not streamed.value.non_retryable
    assert _shape(streamed.value) == _shape(whole.value)


async def test_cancelling_a_slow_stream_closes_it(server: FakeLLMServer, kind: str) -> None:
    # 0.2 s a chunk: seconds for the whole reply (38 text chunks), were it read to the end.
    server.reply(Reply(text="word " * 30, chunk_delay=0.2))
    sink = Recorder()
    call = asyncio.create_task(PROVIDERS[kind](server).complete(request(), "fake-model", sink))
    await asyncio.wait_for(sink.started.wait(), timeout=60)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # The cancel closed the stream mid-reply (the server saw the client go before its last
    # chunk), rather than reading it to its end; the waits are the test's bounds.
    [sent] = server.requests
    assert await asyncio.to_thread(sent.disconnected.wait, 30), "the server saw the close"
    assert "".join(sink.texts) != "word " * 30


def _shape(exc: ApplicationError) -> tuple[object, ...]:
    return (exc.type, str(exc), exc.non_retryable, exc.next_retry_delay)


def argument_pieces(kind: str, reply: Reply) -> list[list[str]]:
    """The non-empty pieces the fake server sends of each call's arguments, in call order."""
    pieces: dict[int, list[str]] = defaultdict(list)
    for frame in stream_frames(ENDPOINT[kind], reply, "fake-model", {}):
        data = frame.decode().split("data: ", 1)[1]
        if data.startswith("[DONE]"):
            continue
        event = json.loads(data)
        if kind == "chat":
            for part in event["choices"][0]["delta"].get("tool_calls", []):
                pieces[part["index"]].append(part["function"]["arguments"])
        elif event["type"] == "response.function_call_arguments.delta":
            pieces[event["output_index"]].append(event["delta"])
        elif event["type"] == "content_block_delta" and "partial_json" in event["delta"]:
            pieces[event["index"]].append(event["delta"]["partial_json"])
    return [[p for p in pieces[i] if p] for i in sorted(pieces)]
