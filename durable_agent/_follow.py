"""Following a live run from the CLI (`watch`, `run`): its events until it closes, where a
thread's stream stands before a message, and how they print: the model's reply as it streams,
then every item as it lands, in `_render`'s style, with the reply's text printed once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from typing import TextIO

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from ._render import render
from .client import AgentClient
from .wire import (
    AssistantMessage,
    EventSource,
    LiveEvent,
    LiveQuery,
    RunState,
    StatusEvent,
    UserMessage,
    cursor,
    parse_cursor,
)

CLOSED_POLL_SECONDS = 2.0
"""How often a follower checks that the run is still open (see `live_events`)."""

RETRYING = " [retrying]"
"""Ends a streamed line whose call is tried again: the retried text follows on a new line."""
INTERRUPTED = " [interrupted]"
"""Ends a streamed line that an interrupt cut off (the run's `interrupted` event holds it)."""


class LivePrinter:
    """Writes `AgentClient.events` to `out`. A text delta opens the reply's line (`who  text`)
    and extends it without a newline; when the message lands, only what the line lacks is
    written, so the line ends up as `render(message)` would print it. Status events that land
    while a line is open wait until it ends, so the reply is never split by them."""

    def __init__(self, out: TextIO, events: Collection[EventSource]) -> None:
        self._out = out
        self._events = set(events)
        self._speaker = "assistant"
        """The agent of the turn in progress (from its `turn_started` event)."""
        self._prefix: str | None = None
        """The open line's `who` column, or None when no line is open."""
        self._streamed = ""
        """The open line's text: what the call has streamed."""
        self._held: list[StatusEvent] = []

    def show(self, event: LiveEvent) -> None:
        if event.delta is not None and event.delta.kind == "text":
            self._write(event.delta.text)
        elif event.delta is not None and event.delta.kind == "superseded":
            self._end_line(RETRYING)
        elif isinstance(event.item, AssistantMessage):
            self._message(event.item)
        elif isinstance(event.item, StatusEvent):
            self._status(event.item)
        elif event.item is not None:
            self._end_line("")
            self._print(render(event.item))
        elif event.type == "end":
            self._end_line("")
        self._out.flush()

    def close(self) -> None:
        """End an open line (the stream stopped before its message landed)."""
        self._end_line("")
        self._out.flush()

    def _message(self, message: AssistantMessage) -> None:
        text = render(message)
        shown = None if self._prefix is None else self._prefix + self._streamed
        self._prefix = None
        if shown is not None and text.startswith(shown):
            self._out.write(text[len(shown) :] + "\n")
        else:
            # Nothing streamed (or, rarely, the message differs from what streamed: the
            # message is what the run keeps, so it is printed whole).
            self._print(("\n" if shown is not None else "") + text)
        self._release()

    def _status(self, event: StatusEvent) -> None:
        if event.kind == "turn_started":
            self._speaker = str(event.data.get("agent") or self._speaker)
        if event.kind == "interrupted" and self._prefix is not None:
            # The event's `partial` is what the cut-off call had said: the line shows it (its
            # last words may not have reached this reader before the event did).
            partial = str(event.data.get("partial", ""))
            if partial.startswith(self._streamed):
                self._write(partial[len(self._streamed) :])
            self._end_line(INTERRUPTED)
        elif event.source not in self._events:
            return
        elif self._prefix is not None:
            self._held.append(event)
        else:
            self._print(render(event))

    def _write(self, text: str) -> None:
        """Extend the reply's line, opening it first if need be."""
        if not text:
            return
        if self._prefix is None:
            self._prefix, self._streamed = f"{self._speaker:<10} ", ""
            self._out.write(self._prefix)
        self._streamed += text
        self._out.write(text)

    def _end_line(self, marker: str) -> None:
        if self._prefix is not None:
            if marker and self._streamed[-1:].isspace():
                marker = marker.lstrip()
            self._prefix = None
            self._out.write(marker + "\n")
        self._release()

    def _release(self) -> None:
        held, self._held = self._held, []
        for event in held:
            self._print(render(event))

    def _print(self, text: str) -> None:
        if text:
            self._out.write(text + "\n")


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


async def stream_end(client: AgentClient, workflow_id: str) -> str | None:
    """The cursor where the open run `workflow_id`'s stream ends now, so that following it
    prints what comes next, not the conversation so far (read page by page: the `live` query
    has no cheaper way to tell). Deltas from 0: a reply streaming now is shown from its start.
    None when no run is open: the message starts one, whose stream starts at the start."""
    description = await client.find(workflow_id)
    if description is None or description.status is not WorkflowExecutionStatus.RUNNING:
        return None
    items = 0
    while True:
        try:
            page = await client.live(workflow_id, LiveQuery(items=items))
        except RPCError as exc:  # no worker answers yet: as `AgentClient.events`, wait for one
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(CLOSED_POLL_SECONDS)
            continue
        items = page.next_items
        if not page.more:
            return cursor(items, 0)


async def live_events(
    client: AgentClient,
    workflow_id: str,
    after: str | None,
    deltas: bool,
    wake: asyncio.Event | None = None,
) -> AsyncIterator[LiveEvent]:
    """`AgentClient.events`, also ended when the run closes in a state that is not an ended
    one (terminated, timed out, failed before its loop began, or cancelled by a version before
    cancel-with-result): the stream's own `end` never comes then. The rest of its stream is
    read once, then an `end` with the state it closed in."""
    closed = asyncio.ensure_future(closes(client, workflow_id))
    stream = client.events(workflow_id, after=after, deltas=deltas, wake=wake)
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
        page = await client.live(workflow_id, LiveQuery(items=items, deltas=offset))
        for item in page.items:
            items += 1
            yield LiveEvent(id=cursor(items, offset), type="item", item=item, state=page.state)
        items = page.next_items
        if not page.more:
            yield LiveEvent(id=cursor(items, offset), type="end", state=page.state)
            return


async def closes(client: AgentClient, workflow_id: str) -> None:
    """Returns once the run `workflow_id` has closed (or is gone)."""
    while True:
        await asyncio.sleep(CLOSED_POLL_SECONDS)
        try:
            description = await client.find(workflow_id)
        except RPCError:
            continue
        if description is None or description.status is not WorkflowExecutionStatus.RUNNING:
            return
