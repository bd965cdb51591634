"""Following a run live. Every reader of a run's stream goes through this module:
`AgentClient.events` and `follow` (and through them MCP serve's progress and threads), the
CLI's `run` and `watch`, serve's hub (SSE, the operator page) and AG-UI.

A run's stream is read with the `live` query, never an update: any number of observers leave
the run's history and its update limit alone, so approvals never wait behind them. Queries
need a worker: while none answers (a run that waits for days), readers keep polling, slowly.
The model's deltas come from the live bus, beside the run (`durable_agent.live.RunDeltas`),
merged in order: a call's deltas before the item that ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Protocol, TypeGuard

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from .live import RunDeltas
from .wire import (
    EVENT_KINDS,
    EventKind,
    EventSource,
    HistoryPage,
    Item,
    LiveEvent,
    LivePage,
    LiveQuery,
    RunState,
    StatusEvent,
    UserMessage,
    cursor,
    parse_cursor,
)

__all__ = [
    "CLOSED_POLL_SECONDS",
    "LIVE_IDLE_INTERVAL",
    "LIVE_POLL_INTERVAL",
    "RunReader",
    "answered_after",
    "closed_state",
    "closes",
    "events",
    "follow_history",
    "kind_of",
    "live_events",
    "stream_end",
]

LIVE_POLL_INTERVAL = 0.05
"""Seconds between `live` reads while a model call streams (observer latency: about half)."""
LIVE_IDLE_INTERVAL = 1.0
CLOSED_CHECK_INTERVAL = 2.0
"""Seconds of quiet after which `events` asks the server whether the run was closed."""
CLOSED_POLL_SECONDS = 2.0
"""How often a follower checks that the run is still open (see `live_events`)."""
LIVE_QUERY_TIMEOUT = timedelta(seconds=5)
"""How long `events` waits for one `live` query (Temporal's default: 30 s). A query sent as
the run completes can go unanswered (dev server 1.32, a worker without a cache: one of three
readers woken at once by a call's end waited the whole 30 s); the reader then asks again."""


class RunReader(Protocol):
    """What following a run needs of a client (`AgentClient` is one)."""

    @property
    def client(self) -> Client:
        """The Temporal client: the live bus's reader finds a call with it."""

    async def live(
        self, workflow_id: str, query: LiveQuery, rpc_timeout: timedelta | None = None
    ) -> LivePage: ...

    async def history(
        self, workflow_id: str, events: Sequence[EventSource] = (), since: int = 0
    ) -> HistoryPage: ...

    async def find(self, workflow_id: str) -> WorkflowExecutionDescription | None: ...


def kind_of(event: StatusEvent) -> EventKind | None:
    """The event's kind as a known name (None for a kind a newer version records): readers
    compare it with `EventKind` literals, which the type checker holds to the list."""
    kind = event.kind
    return kind if _known(kind) else None


def _known(kind: str) -> TypeGuard[EventKind]:
    return kind in EVENT_KINDS


async def events(
    reader: RunReader,
    workflow_id: str,
    *,
    after: str | None = None,
    deltas: bool = True,
    poll_interval: float = LIVE_POLL_INTERVAL,
    wake: asyncio.Event | None = None,
) -> AsyncIterator[LiveEvent]:
    """`AgentClient.events`: the run's stream from the cursor `after`, then one `end`."""
    items, offset = parse_cursor(after)
    bus = RunDeltas(reader.client, workflow_id) if deltas else None
    try:
        stream = _events(reader, workflow_id, items, offset, bus, poll_interval, wake)
        async for event in stream:
            yield event
    finally:
        if bus is not None:
            await bus.close()


async def _events(
    reader: RunReader,
    workflow_id: str,
    items: int,
    offset: int,
    bus: RunDeltas | None,
    poll_interval: float,
    wake: asyncio.Event | None,
) -> AsyncIterator[LiveEvent]:
    """`events`' loop. The cursor's delta part is a position on the live bus: the `live` query
    echoes it, the bus's deltas move it."""
    state: RunState | None = None
    idle = poll_interval
    closed = False
    quiet_since = time.monotonic()
    while True:
        try:
            query = LiveQuery(items=items, deltas=offset)
            page = await reader.live(workflow_id, query, rpc_timeout=LIVE_QUERY_TIMEOUT)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise
            # No worker to answer: the run waits (for days, maybe), or it was closed.
            if await _closed(reader, workflow_id):
                if not closed:  # read once more: a closed run's last items and its state
                    closed = True
                    continue
                yield LiveEvent(
                    id=cursor(items, offset), type="end", state=state or RunState.FAILED
                )
                return
            await asyncio.sleep(LIVE_IDLE_INTERVAL)
            continue
        for item in page.items:
            for delta in await bus.before(item, offset) if bus is not None else ():
                offset = max(offset, (delta.offset or 0) + 1)
                yield LiveEvent(
                    id=cursor(items, offset), type="delta", delta=delta, state=page.state
                )
            items += 1
            yield LiveEvent(id=cursor(items, offset), type="item", item=item, state=page.state)
        items = page.next_items
        if page.state != state:
            state = page.state
            yield LiveEvent(id=cursor(items, offset), type="state", state=state)
        if page.done or (closed and not page.more):
            yield LiveEvent(id=cursor(items, offset), type="end", state=page.state)
            return
        if page.more:
            continue
        if bus is not None and page.streaming:
            async for delta in bus.stream(offset):
                offset = max(offset, (delta.offset or 0) + 1)
                yield LiveEvent(
                    id=cursor(items, offset), type="delta", delta=delta, state=page.state
                )
            if bus.waited:  # the bus read was the wait
                idle, quiet_since = poll_interval, time.monotonic()
                continue
        if page.items or page.streaming:
            idle, quiet_since = poll_interval, time.monotonic()
        else:
            idle = min(idle * 1.5, LIVE_IDLE_INTERVAL)
        if not closed and time.monotonic() - quiet_since >= CLOSED_CHECK_INTERVAL:
            # A terminated (or timed-out) run never reaches an ended state of its own.
            closed, quiet_since = await _closed(reader, workflow_id), time.monotonic()
            if closed:
                continue  # one more read picks up what its last task added
        if await _woken(wake, idle):
            idle, quiet_since = poll_interval, time.monotonic()


async def live_events(
    reader: RunReader,
    workflow_id: str,
    after: str | None,
    deltas: bool,
    wake: asyncio.Event | None = None,
) -> AsyncIterator[LiveEvent]:
    """`events`, also ended when the run closes in a state that is not an ended one
    (terminated, timed out, failed before its loop began, or cancelled by a version before
    cancel-with-result): the stream's own `end` never comes then. The rest of its stream is
    read once, then an `end` with the state it closed in."""
    closed = asyncio.ensure_future(closes(reader, workflow_id))
    stream = events(reader, workflow_id, after=after, deltas=deltas, wake=wake)
    try:
        while True:
            step = asyncio.ensure_future(anext(stream))
            await asyncio.wait({step, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                await asyncio.wait({step})
                break
            try:
                event = step.result()
            except StopAsyncIteration:
                return
            after = event.id
            yield event
    finally:
        closed.cancel()
        if isinstance(stream, AsyncGenerator):  # a consumer that stopped early leaves it open
            await stream.aclose()
    items, offset = parse_cursor(after)
    while True:
        page = await reader.live(workflow_id, LiveQuery(items=items, deltas=offset))
        for item in page.items:
            items += 1
            yield LiveEvent(id=cursor(items, offset), type="item", item=item, state=page.state)
        items = page.next_items
        if not page.more:
            yield LiveEvent(id=cursor(items, offset), type="end", state=page.state)
            return


async def follow_history(
    reader: RunReader,
    workflow_id: str,
    sources: Sequence[EventSource],
    poll_interval: float,
) -> AsyncIterator[Item]:
    """`AgentClient.follow`: the run's items as they land (no deltas, no states), read with
    the `history` query, until the run ends."""
    since, ended = 0, False
    while True:
        try:
            page = await reader.history(workflow_id, sources, since)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(max(poll_interval, 2.0))
            continue
        for item in page.items:
            yield item
        since = page.next
        if page.done or (ended and not page.more):
            return
        if page.more:
            continue
        if await _closed(reader, workflow_id):
            ended = True  # one more read picks up what the last task added
            continue
        await asyncio.sleep(poll_interval)


async def stream_end(reader: RunReader, workflow_id: str) -> str | None:
    """The cursor where the open run `workflow_id`'s stream ends now, so that following it
    shows what comes next, not the conversation so far (read page by page: the `live` query
    has no cheaper way to tell). Deltas from 0: a reply streaming now is shown from its start.
    None when no run is open: the message starts one, whose stream starts at the start."""
    description = await reader.find(workflow_id)
    if description is None or description.status is not WorkflowExecutionStatus.RUNNING:
        return None
    items = 0
    while True:
        try:
            page = await reader.live(workflow_id, LiveQuery(items=items))
        except RPCError as exc:  # no worker answers yet: as `events`, wait for one
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(CLOSED_POLL_SECONDS)
            continue
        items = page.next_items
        if not page.more:
            return cursor(items, 0)


async def closes(reader: RunReader, workflow_id: str) -> None:
    """Returns once the run `workflow_id` has closed (or is gone)."""
    while True:
        await asyncio.sleep(CLOSED_POLL_SECONDS)
        try:
            if await _closed(reader, workflow_id):
                return
        except RPCError:
            continue


async def closed_state(reader: RunReader, workflow_id: str) -> RunState | None:
    """How the run closed, if it has, as Temporal says it: a run that fails before it records
    a state (an unknown agent, a malformed input) leaves its live stream saying `running`."""
    description = await reader.find(workflow_id)
    status = None if description is None else description.status
    if status is None or status is WorkflowExecutionStatus.RUNNING:
        return None
    if status is WorkflowExecutionStatus.COMPLETED:
        return RunState.COMPLETED
    if status is WorkflowExecutionStatus.CANCELED:
        return RunState.CANCELLED
    return RunState.FAILED


def answered_after(prompt: str) -> Callable[[LiveEvent], bool]:
    """Stops following a thread once `prompt` is in its conversation and the run waits for the
    user again (its answer given, or a handoff to a person)."""
    placed = False

    def answered(event: LiveEvent) -> bool:
        nonlocal placed
        if isinstance(event.item, UserMessage) and event.item.content == prompt:
            placed = True
        return placed and event.type == "state" and event.state is RunState.WAITING_FOR_USER

    return answered


async def _closed(reader: RunReader, workflow_id: str) -> bool:
    """Whether the run has closed; a run that is gone (past retention) counts as closed."""
    description = await reader.find(workflow_id)
    return description is None or description.status not in (None, WorkflowExecutionStatus.RUNNING)


async def _woken(wake: asyncio.Event | None, seconds: float) -> bool:
    """Sleep `seconds`, or less if `wake` is set meanwhile (then clear it and say so)."""
    if wake is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), seconds)
    woken = wake.is_set()
    wake.clear()
    return woken
