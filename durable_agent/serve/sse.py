"""A run's live stream as Server-Sent Events (`GET /runs/{id}/events`): `id:` is the event's
cursor, `event:` its type, `data:` its JSON; a comment keeps a quiet stream open."""

from __future__ import annotations

from collections.abc import AsyncIterator

from temporalio.service import RPCError

from ..wire import LiveEvent
from .errors import rpc_error
from .hub import Hub, HubClosed
from .models import ErrorBody

__all__ = ["KEEPALIVE_SECONDS", "sse_frames"]

KEEPALIVE_SECONDS = 15.0
"""An SSE comment this often while a run is quiet: proxies close idle connections (nginx's
proxy_read_timeout and AWS load balancers' idle timeout are 60 s by default)."""


async def sse_frames(
    hub: Hub, workflow_id: str, after: str | None, deltas: bool
) -> AsyncIterator[str]:
    """SSE frames for the run's events; a comment every `KEEPALIVE_SECONDS` while quiet. A
    reader's error ends the stream with an `error` event; a hub closing (shutdown) ends it
    silently, so the client reconnects, to another process, with its last id."""
    try:
        async with hub.subscribe(workflow_id, after, deltas=deltas) as subscription:
            while not subscription.done:
                batch = await subscription.next_batch(KEEPALIVE_SECONDS)
                yield "".join(map(_frame, batch)) if batch else ": keep-alive\n\n"
    except HubClosed:
        return
    except Exception as exc:
        line = rpc_error(exc, workflow_id)[1] if isinstance(exc, RPCError) else str(exc)
        yield f"event: error\ndata: {ErrorBody(error=line).model_dump_json()}\n\n"


def _frame(event: LiveEvent) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"
