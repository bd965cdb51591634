"""Merging the bus's deltas into a reader of the run's durable stream (the `live` query).

A reader loop (`AgentClient.events`, and through it `serve`'s hub, SSE, AG-UI, `watch`) reads
the run's items with the `live` query as before; `RunDeltas` adds the model call's deltas
from the bus, in order:

- while the page says a call streams, `stream` yields its deltas as they arrive (a blocking
  read on the bus, so a delta reaches the reader in about one bus round trip) for at most
  `ITEMS_EVERY` seconds, then the reader reads the run's items again; the call's end marker
  ends the wait at once, so its message is not waited for;
- before an item that ends the call (its message, or the `interrupted` event), `before`
  returns the deltas the reader has not had yet: the deltas it shows add up to the message;
- a cursor's delta part is a bus position (`_protocol.position`), so a reader that joins
  mid-call (a cursor from before the call) gets the call's deltas so far, and one that
  resumes gets the rest.

When the bus cannot be read, one `unavailable` delta says why (once per call); the items
go on as before and the message lands whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping

from temporalio.client import Client

from ..wire import AssistantMessage, Item, ModelDelta, StatusEvent
from ._deltas import RELOCATE_AFTER, LiveDeltas

ITEMS_EVERY = 0.25
"""Seconds between two reads of the run's items while its call streams on the bus. Items
rarely land mid-call (a status event, a steering message's receipt); the call's end, which
matters, wakes the reader through the end marker."""


class RunDeltas:
    def __init__(
        self, client: Client, workflow_id: str, environ: Mapping[str, str] | None = None
    ) -> None:
        self._deltas = LiveDeltas(client, workflow_id, environ)
        self._told = False
        self._turn = 0
        """The turn of the last `turn_started` seen: what an `unavailable` delta names before
        the call's own deltas did (readers group deltas by turn)."""
        """The call being read was said to be unavailable (once a call, whatever the cause)."""
        self.waited = False
        """The last `stream` spent its time waiting on the bus (the reader's wait is done)."""

    async def before(self, item: Item, since: int) -> list[ModelDelta]:
        """Deltas to show before `item`: when it ends the call being read, the rest of it."""
        if isinstance(item, StatusEvent) and item.kind == "turn_started":
            self._forget()
            turn = item.data.get("turn")
            self._turn = turn if isinstance(turn, int) else self._turn
            return []
        if not _ends_call(item):
            return []
        read = await self._deltas.drain(since)
        told = self._tell(read.unavailable)
        self._forget()
        return [*self._current(read.deltas), *told]

    async def stream(self, since: int, seconds: float = ITEMS_EVERY) -> AsyncIterator[ModelDelta]:
        """The streaming call's deltas from position `since`, as they come, for up to
        `seconds`. Ends early when the call's attempt has ended (its message comes next: the
        reader reads the run's items at once); while the call cannot be read yet (not started,
        or the bus is unavailable) it looks again until then, so that a reader does not query
        the run (which its worker answers) faster than every `seconds`. `waited` says whether
        the time was spent."""
        deadline = time.monotonic() + seconds
        self.waited = False
        while (left := deadline - time.monotonic()) > 0:
            read = await self._deltas.read(since, wait=left)
            for told in self._tell(read.unavailable):
                yield told
            for delta in read.deltas:
                since = (delta.offset or since) + 1
                if self._current([delta]):
                    yield delta
            if read.ended:
                return
            if not read.following:
                await asyncio.sleep(min(RELOCATE_AFTER, max(0.0, deadline - time.monotonic())))
        self.waited = True

    async def close(self) -> None:
        await self._deltas.close()

    def _tell(self, unavailable: str | None) -> list[ModelDelta]:
        """The `unavailable` delta, once a call."""
        if unavailable is None or self._told:
            return []
        self._told = True
        turn = self._deltas.turn or self._turn
        return [ModelDelta(turn=turn, kind="unavailable", text=unavailable)]

    def _current(self, deltas: list[ModelDelta]) -> list[ModelDelta]:
        """Deltas of this turn's call. A call cut off by an interrupt may still publish its
        last batch after the next turn started (its activity hears of the cancel late): that
        text is not the new reply (seen: an interrupted story's tail printed under turn 2)."""
        return [d for d in deltas if d.turn >= self._turn]

    def _forget(self) -> None:
        self._deltas.forget()
        self._told = False


def _ends_call(item: Item) -> bool:
    """The model call's message, or its `interrupted` event: nothing of its turn follows."""
    return isinstance(item, AssistantMessage) or (
        isinstance(item, StatusEvent) and item.kind == "interrupted"
    )


async def streamed_text(
    client: Client, workflow_id: str, environ: Mapping[str, str] | None = None
) -> str:
    """What the run's model call in flight has streamed so far (its latest attempt's text): an
    interrupt keeps it. Bounded: reads what the bus holds now, for at most `ITEMS_EVERY`
    seconds (a bus that is gone must not delay the interrupt); "" when there is no call or the
    bus cannot be read."""
    deltas = LiveDeltas(client, workflow_id, environ)
    got: list[ModelDelta] = []
    try:
        async with asyncio.timeout(ITEMS_EVERY):
            since = 0
            while True:
                read = await (deltas.read(since, 0.0) if not got else deltas.drain(since))
                if not read.deltas:
                    break
                got += read.deltas
                since = (read.deltas[-1].offset or since) + 1
    except TimeoutError:
        pass  # what was read in time
    finally:
        await deltas.close()
    latest = max((d.attempt for d in got), default=0)
    return "".join(d.text for d in got if d.kind == "text" and d.attempt == latest)
