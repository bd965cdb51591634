"""Publishing a streaming model call's reply to the run's observers while it runs.

`BusPublisher` writes the call's deltas to the live bus (`durable_agent.live`), beside the run:
no signal, no workflow task, no history. It sends as soon as it can and batches whatever
arrives while a write is in flight, so a delta waits at most one write (a loopback HTTP append
or a Redis round trip, well under a millisecond) and a fast model costs one write per batch,
not per token. Its last batch is sent before the call returns, then an end marker: the text
deltas of a call add up to its message. (Until issue 20 deltas went to the run's Workflow
Stream as signals: +290 KB of history and 217 signals per 1,000 tokens, docs/architecture.md.)
Publishing serves people watching: it never fails or slows the model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Literal

from temporalio import activity
from temporalio.converter import DataConverter

from durable_agent import live
from durable_agent.live import BusUnavailable, Entry, EntryCodec, Publisher, position, stream_key
from durable_agent.wire import ModelDelta

FINAL_FLUSH = 1.0
"""Seconds the call's last batch and end marker may take as the call returns: a bus that hangs
delays the reply by no more than this."""

log = logging.getLogger(__name__)

Kind = Literal["text", "tool_call", "superseded"]


class BusPublisher:
    """A `DeltaSink` that publishes the current activity's deltas to the live bus."""

    def __init__(self, turn: int, bus: Publisher, converter: DataConverter) -> None:
        info = activity.info()
        self._key = stream_key(info.workflow_id or "", info.workflow_run_id or "", info.activity_id)
        self._turn, self._attempt, self._seq = turn, info.attempt, 0
        self._bus, self._codec = bus, EntryCodec(converter)
        self._waiting: list[ModelDelta] = []
        self._ready = asyncio.Event()
        self._closing = False
        self._sender: asyncio.Task[None] | None = None
        self.failed = False

    def text(self, text: str) -> None:
        if text:
            self._publish("text", text=text)

    def tool_call(self, tool_call_id: str, name: str) -> None:
        self._publish("tool_call", tool_call_id=tool_call_id, name=name)

    def _publish(self, kind: Kind, **data: str) -> None:
        self._waiting.append(ModelDelta(turn=self._turn, attempt=self._attempt, kind=kind, **data))
        self._ready.set()

    async def __aenter__(self) -> BusPublisher:
        if self._attempt > 1:  # what earlier attempts streamed is not the reply
            self._publish("superseded")
        self._sender = asyncio.create_task(self._send(), name="delta-publisher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Send what is left, then the end marker (a cut-off call's too: its text so far is
        what an interrupt keeps), for at most `FINAL_FLUSH` seconds."""
        assert self._sender is not None
        self._closing = True
        self._ready.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._sender), FINAL_FLUSH)
        except TimeoutError:
            await _stop(self._sender)
        except asyncio.CancelledError:
            await _stop(self._sender)
            raise

    async def _send(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                batch, self._waiting = _coalesced(self._waiting), []
                last = self._closing  # the provider is done: nothing comes after this batch
                entries = [Entry(self._next(), data) for data in await self._codec.encode(batch)]
                if last:
                    entries.append(Entry(self._next(), b""))
                await self._bus.publish(self._key, entries)
                if last:
                    return
        except BusUnavailable as error:
            self.failed = True
            log.warning("stopped publishing model deltas: %s", error)
        except Exception as error:  # never the model call's failure
            self.failed = True
            log.warning("stopped publishing model deltas: %s: %s", type(error).__name__, error)

    def _next(self) -> int:
        self._seq += 1
        return position(self._turn, self._attempt, self._seq)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _coalesced(deltas: list[ModelDelta]) -> list[ModelDelta]:
    """Adjacent text deltas as one: what arrived during a write goes as one entry."""
    out: list[ModelDelta] = []
    for delta in deltas:
        if out and delta.kind == "text" and out[-1].kind == "text":
            out[-1] = out[-1].model_copy(update={"text": out[-1].text + delta.text})
        else:
            out.append(delta)
    return out


class DeltaPublisher:
    """The model activity's sink: the call's deltas to the live bus (none when it is off)."""

    def __init__(self, turn: int) -> None:
        self._turn = turn
        self._sinks: list[BusPublisher] = []
        self._stack = contextlib.AsyncExitStack()

    def text(self, text: str) -> None:
        for sink in self._sinks:
            sink.text(text)

    def tool_call(self, tool_call_id: str, name: str) -> None:
        for sink in self._sinks:
            sink.tool_call(tool_call_id, name)

    async def __aenter__(self) -> DeltaPublisher:
        stack = await self._stack.__aenter__()
        bus = live.publisher()
        if bus is not None:
            converter = activity.client().data_converter
            publisher = BusPublisher(self._turn, bus, converter)
            self._sinks.append(await stack.enter_async_context(publisher))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)
