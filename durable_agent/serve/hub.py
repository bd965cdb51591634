"""Fan-out of live runs' streams: any number of observers of one run cost one reader of it.

Per workflow id that somebody watches, one reader task iterates the run's stream from its
start (`AgentClient.events`: the `live` query, polled; `live_events` also ends it when the run
closes without an ended state, e.g. terminated) and keeps what it read; each subscriber takes
the events after its own cursor from that list and waits for the reader when it has caught up.
A `serve` process keeps no other state, so any number of them can run behind a load balancer:
a client that reconnects elsewhere resumes with its cursor.

What is kept, for each run that has a subscriber (and for `READER_LINGER` seconds after its last
one leaves): the run's items (messages and status events, which the workflow holds in full
too, so the run's own size limits bound them), its state changes, and the deltas of the model
call in flight only. A call's deltas are dropped once its message (or its `interrupted` event)
is in the stream, as the workflow drops them: a subscriber from before that point gets the
message, which holds the same text, and one whose cursor names only the items so far (`N.0`,
as `AgentClient` readers use it: "the reply streaming now, from its start") gets what the `live`
query would give it, never an earlier reply's deltas. A reader whose run has ended is dropped as
soon as its last subscriber leaves, one that failed at once.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from .._follow import kind_of, live_events
from ..client import AgentClient
from ..wire import AssistantMessage, LiveEvent, StatusEvent, parse_cursor

__all__ = ["READER_LINGER", "Hub", "HubClosed", "Subscription"]

READER_LINGER = 10.0
"""Seconds a reader goes on after its last subscriber left. A browser's EventSource reconnects
about 3 s after a dropped connection (Chromium's and Firefox's default retry) and a page reload
takes a second or two: either finds the reader still there, instead of one that must read the
run's stream from its start again. Idle, a reader costs one query a second; this caps what a
run nobody watches costs."""

Source = Callable[[str, asyncio.Event], AsyncIterator[LiveEvent]]
"""A run's events, given its workflow id and an event that, set, ends the reader's idle wait."""
"""What a reader iterates: the run's stream from its start, for a workflow id."""


class HubClosed(Exception):
    """The hub was closed (the server is shutting down): a client should reconnect elsewhere."""


@dataclass(frozen=True)
class _Entry:
    seq: int
    """Numbers the entries a reader kept, so subscribers find their place after a drop."""
    event: LiveEvent
    position: tuple[int, int]


class _Feed:
    """One run's reader and what it has read."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        self.entries: list[_Entry] = []
        self.error: BaseException | None = None
        self.finished = False
        self.subscribers = 0
        self.stopper: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self._seq = 0
        self._delta_turn: int | None = None
        self._changed = asyncio.Event()
        self.wake = asyncio.Event()
        """Set when something was just sent to the run: its reader reads now, not after its idle
        wait (up to a second), so a new turn's first text is not held back."""

    def append(self, event: LiveEvent) -> None:
        delta, item = event.delta, event.item
        # Where the workflow ends a call's deltas (`AgentWorkflow._call_model`): its message,
        # or the `interrupted` event of a call cut off; a delta of another turn (a call that
        # failed and ended nothing) is a safety net.
        ended = isinstance(item, AssistantMessage) or (
            isinstance(item, StatusEvent) and kind_of(item) == "interrupted"
        )
        if ended or (delta is not None and delta.turn != self._delta_turn):
            if self._delta_turn is not None:
                self.entries = [e for e in self.entries if e.event.delta is None]
            self._delta_turn = None if delta is None else delta.turn
        self.entries.append(_Entry(self._seq, event, parse_cursor(event.id)))
        self._seq += 1
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        self.finished = True
        self.error = self.error or error
        self._wake()

    def changed(self) -> asyncio.Event:
        """Set at the next change: take it before looking, wait on it after."""
        return self._changed

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class Subscription:
    """One observer's view of a run's stream: the events after its cursor, in order, ending
    with `end`.

    A cursor `I.D` means what it means to `AgentClient.events`: the items from the (I+1)-th
    on, and the deltas from live-bus position D on. So an item (id `i.d`: it is the i-th)
    comes when i > I, a delta (it ends at position d) when d > D, and a `state` event when it
    is not before the cursor: after more items (i > I), or after as many and not before its
    deltas (i == I and d >= D). A resumed stream never misses a state change that followed its
    last event (when that event was a `state` one, it comes again), even from a reader that
    started after the call whose deltas the cursor names (it read none: its d is lower). `end`
    always comes. Comparing each kind by its own part, not "either part is larger", keeps a
    cursor that names only the items (`N.0`: "what comes next, and the reply streaming now
    from its start") from letting earlier items through: theirs is the delta offset of their
    page.
    """

    def __init__(self, feed: _Feed, after: tuple[int, int] | None, deltas: bool) -> None:
        self._feed = feed
        self._after = after
        self._deltas = deltas
        self._next = 0
        self.done = False
        """The `end` event was taken, or the reader stopped without one."""

    async def next_batch(self, wait: float | None = None) -> list[LiveEvent]:
        """The events read since the last call, waiting up to `wait` seconds for one: [] when
        none came in time (a keep-alive is due) or the stream is done. Raises the reader's
        error (the server's NOT_FOUND `RPCError` for an unknown run), or `HubClosed`."""
        loop = asyncio.get_running_loop()
        deadline = None if wait is None else loop.time() + wait
        while not self.done:
            feed = self._feed
            changed = feed.changed()
            batch = self._take()
            if batch:
                return batch
            if feed.error is not None:
                raise feed.error
            if feed.finished:
                self.done = True
                break
            left = None if deadline is None else deadline - loop.time()
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                return []
        return []

    def __aiter__(self) -> AsyncIterator[LiveEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[LiveEvent]:
        while not self.done:
            for event in await self.next_batch():
                yield event

    def _take(self) -> list[LiveEvent]:
        entries = self._feed.entries
        start = bisect.bisect_left(entries, self._next, key=lambda e: e.seq)
        taken: list[LiveEvent] = []
        for entry in entries[start:]:
            self._next = entry.seq + 1
            if entry.event.type == "end":
                taken.append(entry.event)
                self.done = True
                break
            if self._wanted(entry):
                taken.append(entry.event)
        return taken

    def _wanted(self, entry: _Entry) -> bool:
        kind = entry.event.type
        if kind == "delta" and not self._deltas:
            return False
        if self._after is None:
            return True
        (items, deltas), (after_items, after_deltas) = entry.position, self._after
        if kind == "item":
            return items > after_items
        if kind == "delta":
            return deltas > after_deltas
        return items > after_items or (items == after_items and deltas >= after_deltas)


class Hub:
    """Readers of live runs shared by their subscribers (see the module docstring)."""

    def __init__(
        self, client: AgentClient, *, linger: float = READER_LINGER, source: Source | None = None
    ) -> None:
        self._source: Source = source or (
            lambda wf, wake: live_events(client, wf, None, deltas=True, wake=wake)
        )
        self._linger = linger
        self._feeds: dict[str, _Feed] = {}
        self._closed = False
        self.readers_started: Counter[str] = Counter()
        """How many readers each workflow id has had: one while its subscribers overlap."""

    @contextlib.asynccontextmanager
    async def subscribe(
        self, workflow_id: str, after: str | None = None, *, deltas: bool = True
    ) -> AsyncIterator[Subscription]:
        """Watch `workflow_id` from the cursor `after` (a `LiveEvent.id`; None: the start),
        without the model's deltas unless `deltas`. Raises ValueError for a malformed cursor,
        `HubClosed` once the hub is closed."""
        position = parse_cursor(after) if after else None
        if self._closed:
            raise HubClosed("the server is shutting down")
        feed = self._feeds.get(workflow_id)
        if feed is None:
            feed = self._start(workflow_id)
        feed.wake.set()
        if feed.stopper is not None:
            feed.stopper.cancel()
            feed.stopper = None
        feed.subscribers += 1
        try:
            yield Subscription(feed, position, deltas)
        finally:
            self._leave(feed)

    def wake(self, workflow_id: str) -> None:
        """Something was just sent to the run: its reader, if any, reads now."""
        feed = self._feeds.get(workflow_id)
        if feed is not None:
            feed.wake.set()

    def reading(self, workflow_id: str) -> bool:
        """Whether a reader reads the run now (it may have no subscriber left: it lingers)."""
        return workflow_id in self._feeds

    def subscribers(self, workflow_id: str) -> int:
        feed = self._feeds.get(workflow_id)
        return 0 if feed is None else feed.subscribers

    def kept(self, workflow_id: str) -> list[LiveEvent]:
        """The events the run's reader keeps now (empty when none reads it)."""
        feed = self._feeds.get(workflow_id)
        return [] if feed is None else [e.event for e in feed.entries]

    async def close(self) -> None:
        """Stop every reader; subscribers get `HubClosed` (their clients reconnect elsewhere)."""
        self._closed = True
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            if feed.stopper is not None:
                feed.stopper.cancel()
            feed.finish(HubClosed("the server is shutting down"))
            if feed.task is not None:
                feed.task.cancel()
        await asyncio.gather(*(f.task for f in feeds if f.task), return_exceptions=True)

    def _start(self, workflow_id: str) -> _Feed:
        feed = _Feed(workflow_id)
        self._feeds[workflow_id] = feed
        self.readers_started[workflow_id] += 1
        feed.task = asyncio.create_task(self._read(feed), name=f"hub reader {workflow_id}")
        return feed

    async def _read(self, feed: _Feed) -> None:
        stream = self._source(feed.workflow_id, feed.wake)
        try:
            async for event in stream:
                feed.append(event)
        except asyncio.CancelledError:
            feed.finish()
            raise
        except Exception as exc:  # passed to every subscriber, which reports it
            feed.finish(exc)
            self._forget(feed)  # a new subscriber tries again (the run may exist by then)
        else:
            feed.finish()
            if not feed.subscribers:
                self._forget(feed)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def _leave(self, feed: _Feed) -> None:
        feed.subscribers -= 1
        if feed.subscribers:
            return
        if feed.finished:
            # An ended run's stream is cheap to read again, and an id may be used by a new run.
            self._forget(feed)
        else:
            loop = asyncio.get_running_loop()
            feed.stopper = loop.call_later(self._linger, self._stop_unwatched, feed)

    def _stop_unwatched(self, feed: _Feed) -> None:
        feed.stopper = None
        if not feed.subscribers:
            self._forget(feed)
            if feed.task is not None:
                feed.task.cancel()

    def _forget(self, feed: _Feed) -> None:
        if self._feeds.get(feed.workflow_id) is feed:
            del self._feeds[feed.workflow_id]
