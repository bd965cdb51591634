"""Following a live run (`watch`, `run`, serve's hub, AG-UI): its events until it closes, and
where a thread's stream stands before a message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from .client import AgentClient
from .wire import (
    LiveEvent,
    LiveQuery,
    RunState,
    UserMessage,
    cursor,
    parse_cursor,
)

CLOSED_POLL_SECONDS = 2.0
"""How often a follower checks that the run is still open (see `live_events`)."""


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
