"""The live bus (issue 20): token deltas beside the run, on the embedded bus and on Redis.

Both engines pass the same contract (append, blocking read, resume from a position, end
marker, a superseded attempt refused); Redis runs as a real `redis-server` process on a
loopback port. Then real runs on a dev server: a streaming call's deltas are on the bus, found
from the run's pending model activity, and add up to the message; a bus that dies mid-call
loses nothing durable.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Literal

import pytest
import redis.asyncio as aioredis
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, AssistantMessage, LiveEvent, ScriptedModel, UserMessage
from durable_agent import live as bus
from durable_agent.cli.printer import LivePrinter
from durable_agent.client import AgentClient
from durable_agent.encryption import EncryptionCodec, KeyRing, generate_key
from durable_agent.live import (
    Batch,
    BusUnavailable,
    EmbeddedPublisher,
    EmbeddedReader,
    Entry,
    EntryCodec,
    LiveDeltas,
    RedisBus,
    position,
)
from durable_agent.storage import data_converter
from durable_agent.wire import ModelDelta, RunState

from .conftest import agent_client, new_id
from .fake_llm_server import FakeLLMServer, Reply
from .processes import free_port

REPLY = "The quick brown fox jumps over the lazy dog and then naps in the sun."


class RedisServer:
    """Debian's redis-server as a plain process on a loopback port, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="durable-agent-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", self._dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def ready(self) -> None:
        """Bounded: answers PONG within 5 s or the test fails."""
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    if not (shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server")):
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer()
    server.start()
    server.ready()
    yield server
    server.kill()


class Engine:
    """One engine's two sides, as a worker and a reader see them."""

    def __init__(self, publish: bus.Publisher, reader: bus.Reader) -> None:
        self.publisher, self.reader = publish, reader


@pytest.fixture(params=["embedded", "redis"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[Engine]:
    if request.param == "embedded":
        publisher = EmbeddedPublisher("127.0.0.1", 0, None)
        reader = EmbeddedReader(publisher.address)
        yield Engine(publisher, reader)
        await reader.close()
        await publisher.close()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        redis_bus = RedisBus(server.url)
        yield Engine(redis_bus, redis_bus)
        await redis_bus.close()


def entries(turn: int, attempt: int, texts: list[str], first: int = 1) -> list[Entry]:
    return [
        Entry(position(turn, attempt, seq), text.encode()) for seq, text in enumerate(texts, first)
    ]


def texts(batch: Batch) -> list[str]:
    return [e.data.decode() for e in batch.entries]


async def test_a_blocking_read_wakes_when_the_call_publishes(engine: Engine) -> None:
    key = f"{new_id()}/run/1"
    waiting = asyncio.create_task(engine.reader.read(key, 0, wait=10))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await engine.publisher.publish(key, entries(1, 1, ["Hello", " world"]))
    batch = await asyncio.wait_for(waiting, 10)
    assert texts(batch) == ["Hello", " world"] and not batch.ended


async def test_a_reader_resumes_after_the_position_it_had(engine: Engine) -> None:
    key = f"{new_id()}/run/1"
    await engine.publisher.publish(key, entries(3, 1, ["a", "b", "c"]))
    second = position(3, 1, 2)
    assert texts(await engine.reader.read(key, second, wait=0)) == ["b", "c"]
    assert texts(await engine.reader.read(key, second + 1, wait=0)) == ["c"]
    # A cursor from an earlier turn reads the call from its start.
    assert texts(await engine.reader.read(key, position(2, 1, 9) + 1, wait=0)) == ["a", "b", "c"]
    nothing = await engine.reader.read(key, position(3, 1, 3) + 1, wait=0.1)
    assert nothing.entries == [] and not nothing.ended


async def test_the_end_marker_ends_the_attempt_and_a_retry_goes_on_after_it(
    engine: Engine,
) -> None:
    key = f"{new_id()}/run/1"
    await engine.publisher.publish(key, [*entries(1, 1, ["one"]), Entry(position(1, 1, 2), b"")])
    ended = await engine.reader.read(key, 0, wait=5)
    assert texts(ended) == ["one"] and ended.ended
    # Read past its last delta, an ended stream answers at once that it has ended.
    assert (await engine.reader.read(key, position(1, 1, 1) + 1, wait=5)).ended
    await engine.publisher.publish(key, entries(1, 2, ["superseded", "two"]))
    retried = await engine.reader.read(key, position(1, 1, 1) + 1, wait=5)
    assert texts(retried) == ["superseded", "two"] and not retried.ended
    # The first attempt, still flushing after its retry began, is refused.
    await engine.publisher.publish(key, entries(1, 1, ["late"], first=3))
    everything = await engine.reader.read(key, 0, wait=0)
    assert texts(everything) == ["one", "superseded", "two"]


async def test_redis_caps_a_stream_and_lets_it_expire(redis_server: RedisServer) -> None:
    redis_bus = RedisBus(redis_server.url)
    raw = aioredis.Redis.from_url(redis_server.url)
    key = f"{new_id()}/run/1"
    try:
        for start in range(1, 25_001, 5_000):
            await redis_bus.publish(key, entries(1, 1, ["x"] * 5_000, first=start))
        name = f"durable-agent:live:{key}"
        length = await raw.xlen(name)
        assert 10_000 <= length < 12_000, length  # MAXLEN ~ 10,000
        assert 3000 < await raw.ttl(name) <= 3600  # idle expiry while the call runs
        await redis_bus.publish(key, [Entry(position(1, 1, 25_001), b"")])
        assert 0 < await raw.ttl(name) <= 300  # shorter once it has ended
    finally:
        await raw.aclose()
        await redis_bus.close()


async def test_a_bus_that_is_gone_is_unavailable_not_hanging() -> None:
    port = free_port()
    with pytest.raises(BusUnavailable):
        await RedisBus(f"redis://127.0.0.1:{port}/0").read("k", 0, wait=1)
    with pytest.raises(BusUnavailable):
        await RedisBus(f"redis://127.0.0.1:{port}/0").publish("k", entries(1, 1, ["x"]))
    reader = EmbeddedReader(f"http://127.0.0.1:{port}")
    with pytest.raises(BusUnavailable):
        await reader.read("k", 0, wait=1)


def test_redis_is_imported_only_once_a_redis_url_is_set() -> None:
    """`redis.asyncio` cost 80-200 ms of every worker's and CLI command's start; the embedded
    bus, the default, does not need it."""
    script = (
        "import sys; import durable_agent.worker, durable_agent.cli.main, durable_agent.serve; "
        "from durable_agent import live; "
        "before = sorted(m for m in sys.modules if m.split('.')[0] == 'redis'); "
        "live.publisher({'DURABLE_AGENT_LIVE_URL': 'redis://127.0.0.1:1/0'}); "
        "print(before, 'redis.asyncio' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != bus.LIVE_URL_VARIABLE}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["[]", "True"], done.stderr


async def test_an_unknown_call_on_a_worker_is_said_so() -> None:
    publisher = EmbeddedPublisher("127.0.0.1", 0, None)
    await publisher.publish("known", entries(1, 1, ["x"]))
    reader = EmbeddedReader(publisher.address)
    try:
        assert not (await reader.read("gone", 0, wait=1)).known
    finally:
        await reader.close()
        await publisher.close()


async def test_with_encryption_the_bus_holds_only_ciphertext(redis_server: RedisServer) -> None:
    keys = KeyRing.parse(f"k1:{generate_key()}")
    sealed = EntryCodec(data_converter(encryption=EncryptionCodec(keys)))
    secret = "the launch code is 0000"
    data = await sealed.encode([ModelDelta(turn=1, kind="text", text=secret)])
    redis_bus = RedisBus(redis_server.url)
    raw = aioredis.Redis.from_url(redis_server.url)
    key = f"{new_id()}/run/1"
    try:
        await redis_bus.publish(key, [Entry(position(1, 1, 1), data[0])])
        stored = await raw.xrange(f"durable-agent:live:{key}")
        assert secret.encode() not in b"".join(v for _, f in stored for v in f.values())
        batch = await redis_bus.read(key, 0, wait=0)
        [delta] = await sealed.decode([e.data for e in batch.entries])
        assert delta.text == secret
        # A reader without the keys cannot read it.
        plain = data_converter()
        assert plain.payload_codec is None
        with pytest.raises(Exception):  # noqa: B017 - the converter's own error
            await EntryCodec(plain).decode([batch.entries[0].data])
        assert Payload.FromString(data[0]).metadata["encoding"] == b"binary/encrypted"
    finally:
        await raw.aclose()
        await redis_bus.close()


@contextmanager
def live_url(url: str | None) -> Iterator[None]:
    before = os.environ.get(bus.LIVE_URL_VARIABLE)
    if url is None:
        os.environ.pop(bus.LIVE_URL_VARIABLE, None)
    else:
        os.environ[bus.LIVE_URL_VARIABLE] = url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(bus.LIVE_URL_VARIABLE, None)
        else:
            os.environ[bus.LIVE_URL_VARIABLE] = before


async def follow_call(deltas: LiveDeltas, until: asyncio.Task[object]) -> list[ModelDelta]:
    """Every delta of the run's calls, as a reader reads them while the run goes on."""
    got: list[ModelDelta] = []
    since = 0
    while not until.done():
        read = await deltas.read(since, wait=0.5)
        got += read.deltas
        if read.deltas:
            since = (read.deltas[-1].offset or 0) + 1
        elif not read.deltas:
            await asyncio.sleep(0.02)
    got += (await deltas.drain(since)).deltas
    return got


@pytest.mark.parametrize("where", ["embedded", "redis"])
async def test_a_streamed_reply_is_on_the_bus_and_adds_up_to_the_message(
    dev_env: WorkflowEnvironment, where: str, request: pytest.FixtureRequest
) -> None:
    url = None if where == "embedded" else request.getfixturevalue("redis_server").url
    agent = Agent("bus-streamer", model=ScriptedModel(new_id(), [REPLY], chunk_delay=0.03))
    with live_url(url):
        async with agent_client(dev_env.client, agent) as (client, worker):
            announced = "live=http://127.0.0.1:" if url is None else "live=redis"
            assert announced in str(worker.config().get("identity"))
            handle = await client.start("bus-streamer", "say it slowly")
            deltas = LiveDeltas(dev_env.client, handle.id)
            result = asyncio.create_task(handle.result())
            got = await asyncio.wait_for(follow_call(deltas, result), 60)
            await deltas.close()
    assert (await result).final_text == REPLY
    text = [d for d in got if d.kind == "text"]
    assert len(text) > 3, got
    assert "".join(d.text for d in text) == REPLY  # the last batch is sent too
    offsets = [d.offset or 0 for d in got]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


async def test_a_bus_that_dies_mid_call_loses_nothing_durable(
    dev_env: WorkflowEnvironment,
) -> None:
    server = RedisServer()
    server.start()
    server.ready()
    agent = Agent("bus-loser", model=ScriptedModel(new_id(), [REPLY], chunk_delay=0.1))
    try:
        with live_url(server.url):
            async with agent_client(dev_env.client, agent) as (client, _):
                handle = await client.start("bus-loser", "say it slowly")
                deltas = LiveDeltas(dev_env.client, handle.id)
                first = await _first_deltas(deltas)
                server.kill()
                result = await asyncio.wait_for(handle.result(), 60)
                after = await deltas.read((first[-1].offset or 0) + 1, wait=1)
                await deltas.close()
    finally:
        server.kill()
    assert result.final_text == REPLY
    assert first and REPLY.startswith("".join(d.text for d in first))
    assert after.unavailable is not None and "redis" in after.unavailable


async def _first_deltas(deltas: LiveDeltas) -> list[ModelDelta]:
    for _ in range(600):
        read = await deltas.read(0, wait=0.5)
        if read.deltas:
            return read.deltas
        await asyncio.sleep(0.05)
    raise AssertionError("no delta on the bus")


# ---------------------------------------------------------------- readers (`AgentClient.events`)


async def read_events(client: AgentClient, wf_id: str, after: str | None = None) -> list[LiveEvent]:
    async def read() -> list[LiveEvent]:
        return [e async for e in client.events(wf_id, after=after)]

    return await asyncio.wait_for(read(), 60)


def text_of(events: list[LiveEvent]) -> str:
    return "".join(e.delta.text for e in events if e.delta is not None and e.delta.kind == "text")


def message_index(events: list[LiveEvent]) -> int:
    return next(
        i for i, e in enumerate(events) if isinstance(e.item, AssistantMessage) and e.item.content
    )


@pytest.mark.parametrize("where", ["embedded", "redis"])
async def test_every_reader_gets_deltas_that_add_up_before_the_message(
    dev_env: WorkflowEnvironment, where: str, request: pytest.FixtureRequest
) -> None:
    url = None if where == "embedded" else request.getfixturevalue("redis_server").url
    agent = Agent("adder", model=ScriptedModel(new_id(), [REPLY], chunk_delay=0.03))
    with live_url(url):
        # A caching worker, as deployed: with none, a query sent as the run completes can go
        # unanswered (dev server 1.32), and a reader waits `LIVE_QUERY_TIMEOUT` to ask again.
        async with agent_client(dev_env.client, agent, max_cached_workflows=100) as (client, _):
            handle = await client.start("adder", "go")
            readers = [asyncio.create_task(read_events(client, handle.id)) for _ in range(3)]
            seen = await asyncio.gather(*readers)
            history = await handle.fetch_history()
    for events in seen:
        assert text_of(events) == REPLY  # the last batch too: nothing is left to the message
        deltas = [i for i, e in enumerate(events) if e.type == "delta"]
        assert len(deltas) > 3 and max(deltas) < message_index(events)
        assert events[-1].type == "end"
    # Nothing of it went through the workflow: no signal in the run's history.
    assert not any(
        e.HasField("workflow_execution_signaled_event_attributes") for e in history.events
    )


async def test_a_reader_joining_mid_call_gets_the_deltas_so_far_and_a_cursor_resumes(
    dev_env: WorkflowEnvironment,
) -> None:
    agent = Agent("joiner", model=ScriptedModel(new_id(), [REPLY], chunk_delay=0.05))
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("joiner", "go")
        early: list[LiveEvent] = []
        async for event in client.events(handle.id):
            early.append(event)
            if sum(e.type == "delta" for e in early) >= 4:
                break
        # Joining now from the start, and resuming after the 4th delta, both mid-call.
        joined, resumed = await asyncio.gather(
            read_events(client, handle.id), read_events(client, handle.id, after=early[-1].id)
        )
    assert text_of(joined) == REPLY
    assert text_of(early) + text_of(resumed) == REPLY
    assert not any(isinstance(e.item, UserMessage) for e in resumed)  # items came once


async def test_readers_say_live_text_is_unavailable_when_the_bus_is_gone(
    dev_env: WorkflowEnvironment,
) -> None:
    server = RedisServer()
    server.start()
    server.ready()
    agent = Agent("dark", model=ScriptedModel(new_id(), [REPLY], chunk_delay=0.1))
    try:
        with live_url(server.url):
            async with agent_client(dev_env.client, agent) as (client, _):
                handle = await client.start("dark", "go")
                events: list[LiveEvent] = []
                async for event in client.events(handle.id):
                    events.append(event)
                    if event.type == "delta" and event.delta and event.delta.kind == "text":
                        server.kill()  # mid-call
                    if event.type == "end":
                        break
                result = await handle.result()
    finally:
        server.kill()
    assert result.final_text == REPLY
    said = [e.delta for e in events if e.delta is not None and e.delta.kind == "unavailable"]
    assert len(said) == 1 and "redis" in said[0].text
    assert isinstance(events[message_index(events)].item, AssistantMessage)
    assert REPLY.startswith(text_of(events))


def test_watch_says_live_text_is_unavailable_then_prints_the_message_whole() -> None:
    out = io.StringIO()
    printer = LivePrinter(out, ("agent",))

    def delta(kind: Literal["text", "unavailable"], text: str) -> LiveEvent:
        made = ModelDelta(turn=1, kind=kind, text=text)
        return LiveEvent(id="3.0", type="delta", delta=made, state=RunState.RUNNING)

    printer.show(delta("text", "The quick "))
    printer.show(delta("unavailable", "redis: connection refused"))
    message = AssistantMessage(content=REPLY, agent="helper")
    printer.show(LiveEvent(id="4.0", type="item", item=message, state=RunState.COMPLETED))
    printer.close()
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("The quick [live text unavailable]")
    assert lines[-1].endswith(REPLY) and lines[-1].startswith("helper")


@pytest.mark.parametrize("prefix", ["openai", "openai-chat", "anthropic"])
async def test_each_wire_format_streams_deltas_that_add_up_to_the_message(
    dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    """Through the real SDK clients against the fake provider: what a reader is shown is the
    message, to the last token (the publisher's last batch is sent before the call returns)."""
    reply = "Paris is sunny today, with a light breeze from the west and no rain at all."
    with FakeLLMServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        server.reply(Reply(text=reply, chunk_delay=0.02))
        agent = Agent("wired", model=f"{prefix}:fake-model")
        async with agent_client(dev_env.client, agent, max_cached_workflows=100) as (client, _):
            handle = await client.start("wired", "Weather in Paris?")
            events = await read_events(client, handle.id)
    text = [e for e in events if e.delta is not None and e.delta.kind == "text"]
    assert len(text) > 3 and text_of(events) == reply
    assert max(events.index(e) for e in text) < message_index(events)
