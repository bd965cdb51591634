"""A reader's side: the deltas of a run's model call in flight, found and read on the bus.

Where to read comes from what Temporal already shows about the run (`describe`): its latest
run id, its pending model activity's id (the stream's key) and the identity of the worker that
runs it (which announces its bus). So finding a call costs one `describe` per call, and a
reader never asks the workflow for text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.service import RPCError

from ..wire import ModelDelta
from ._entries import EntryCodec
from ._protocol import BusUnavailable, Reader, stream_key, turn_of
from ._settings import announced, reader_for

MODEL_ACTIVITY = "model.complete"
RELOCATE_AFTER = 0.1
"""Seconds before looking for the call again (one `describe`, answered by the server, not the
worker) when none could be read: not started yet, its attempt ended, or its bus failed (a
retry on another worker announces a new address when it starts)."""


@dataclass(frozen=True)
class Located:
    key: str
    where: str
    """What the call's worker announced: `http://host:port` or `redis`."""
    attempt: int


@dataclass
class DeltaRead:
    deltas: list[ModelDelta] = field(default_factory=list)
    """In order; each with `offset` set to its position (a cursor goes on from offset + 1)."""
    unavailable: str | None = None
    """Why live text cannot be read now (the run's items are unaffected)."""
    following: bool = False
    """A call's stream is being read and its attempt has not ended: more may come."""
    ended: bool = False
    """The call's attempt has ended (its end marker was read): its message comes next."""


async def locate(client: Client, workflow_id: str) -> Located | None:
    """The model call in flight in `workflow_id`'s latest run, once a worker has started it."""
    description = await client.get_workflow_handle(workflow_id).describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != MODEL_ACTIVITY:
            continue
        if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED:
            return None  # not started (yet, or again): no worker to read from
        where = announced(pending.last_worker_identity)
        if where is None:
            return None  # a worker from before the bus: its deltas go to the workflow
        key = stream_key(workflow_id, description.run_id, pending.activity_id)
        return Located(key, where, pending.attempt)
    return None


class LiveDeltas:
    """Follows one run's model calls on the bus. `read` is what a reader loop calls while the
    run says a call streams; `forget` once the call's message (or interruption) has landed."""

    def __init__(
        self, client: Client, workflow_id: str, environ: Mapping[str, str] | None = None
    ) -> None:
        self._client = client
        self._workflow_id = workflow_id
        self._environ = environ
        self._codec = EntryCodec(client.data_converter)
        self._call: Located | None = None
        self._readers: dict[str, Reader] = {}
        self._done = False
        """The located attempt's end marker was read: that attempt says no more."""
        self._stale = False
        """The located call could not be read (bus error, unknown there): look again."""
        self._retry_at = 0.0
        self.turn: int | None = None
        """The turn of the call read last (from its deltas' positions)."""

    async def read(self, since: int, wait: float) -> DeltaRead:
        """The call's deltas at or after position `since`, waiting up to `wait` seconds for one.
        Returns at once with none when no call can be read now."""
        if self._call is None or self._done or self._stale:
            if time.monotonic() < self._retry_at:
                return DeltaRead(ended=self._done)
            try:
                found = await locate(self._client, self._workflow_id)
            except RPCError as exc:
                self._retry_at = time.monotonic() + RELOCATE_AFTER
                return DeltaRead(unavailable=f"cannot describe the run: {exc.message}")
            if found is None or (found == self._call and self._done):
                self._retry_at = time.monotonic() + RELOCATE_AFTER
                return DeltaRead(ended=self._done and (found is None or found == self._call))
            self._call, self._done, self._stale = found, False, False
        return await self._read(self._call, since, wait)

    async def drain(self, since: int) -> DeltaRead:
        """What the call read last still has at or after `since`, without waiting: a reader
        takes it before the call's message, so the deltas it shows add up to the message."""
        if self._call is None:
            return DeltaRead()
        return await self._read(self._call, since, 0.0)

    def forget(self) -> None:
        """The call's message (or its interruption) is in the run's stream."""
        self._call, self._done, self._stale, self.turn = None, False, False, None

    async def close(self) -> None:
        readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            await reader.close()

    async def _read(self, call: Located, since: int, wait: float) -> DeltaRead:
        reader = self._readers.get(call.where)
        if reader is None:
            made = reader_for(call.where, self._environ)
            if isinstance(made, str):
                return self._failed(made)
            reader = self._readers[call.where] = made
        try:
            batch = await reader.read(call.key, since, wait)
            deltas = await self._codec.decode([e.data for e in batch.entries])
        except BusUnavailable as exc:
            return self._failed(str(exc))
        except Exception as exc:  # a codec without the keys, a malformed entry
            return self._failed(f"cannot read live text: {type(exc).__name__}: {exc}")
        self._done = batch.ended
        if not batch.known:  # not there (yet, after a whole wait; or its worker restarted)
            self._stale, self._retry_at = True, time.monotonic() + RELOCATE_AFTER
        for delta, entry in zip(deltas, batch.entries, strict=True):
            delta.offset = entry.position
            self.turn = turn_of(entry.position)
        following = not (self._done or self._stale)
        return DeltaRead(deltas, following=following, ended=self._done)

    def _failed(self, why: str) -> DeltaRead:
        self._stale, self._retry_at = True, time.monotonic() + RELOCATE_AFTER
        return DeltaRead(unavailable=why)
