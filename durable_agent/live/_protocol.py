"""What every live bus does, and how a call's deltas are numbered on it.

A model call's deltas go to one stream per call, named by `stream_key` from what both the
worker running the call and any reader can know: the workflow id, the run id, and the call's
activity id (which its retries keep). Every attempt of the call writes to the same stream, so a
retried call's `superseded` marker follows the earlier attempt's text, as it did in the run's
Workflow Stream.

Each delta carries a *position* that grows along the run's whole life: turn, then attempt,
then sequence within the attempt. Observers' cursors (`"<items>.<deltas>"`) hold a position,
so a cursor stays comparable across calls and runs (continue-as-new keeps the turn count), and
a reader that resumes on another `serve` replica gets the same deltas from the same cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

_ATTEMPT_BITS = 12
_SEQ_BITS = 20
MAX_SEQ = (1 << _SEQ_BITS) - 1
"""Entries one attempt may write (a million: `MAX_ENTRIES` trims long before)."""


def position(turn: int, attempt: int, seq: int) -> int:
    """The place of an attempt's `seq`-th entry (from 1) in the run's deltas."""
    attempt = min(attempt, (1 << _ATTEMPT_BITS) - 1)
    return (turn << (_ATTEMPT_BITS + _SEQ_BITS)) | (attempt << _SEQ_BITS) | min(seq, MAX_SEQ)


def turn_of(pos: int) -> int:
    return pos >> (_ATTEMPT_BITS + _SEQ_BITS)


def stream_key(workflow_id: str, run_id: str, activity_id: str) -> str:
    """One model call's stream: its attempts share it (they share the activity id)."""
    return f"{workflow_id}/{run_id}/{activity_id}"


class BusUnavailable(Exception):
    """The bus cannot be reached (or refused the request): live text is unavailable; the
    run's durable record is untouched."""


@dataclass(frozen=True)
class Entry:
    """One delta as the bus holds it: its position and its encoded bytes (`_entries.py`);
    empty bytes mark the end of an attempt's publishing (the entry after its last delta)."""

    position: int
    data: bytes

    @property
    def is_end(self) -> bool:
        return not self.data


@dataclass
class Batch:
    """What a read returned: entries in order, and whether the attempt that wrote last has
    finished publishing (nothing more comes unless the call is tried again)."""

    entries: list[Entry] = field(default_factory=list)
    ended: bool = False
    known: bool = True
    """False when the bus holds no such stream (expired, or its worker restarted)."""


def visible(entries: Sequence[Entry]) -> Batch:
    """A read's answer from the entries at or after the reader's position: the deltas, and
    whether the stream ends in an end marker (a later attempt's entries come after its
    earlier attempt's end marker, so only the last one counts)."""
    return Batch([e for e in entries if not e.is_end], ended=bool(entries) and entries[-1].is_end)


class Publisher(Protocol):
    """The worker's side: append a call's entries, then say the attempt has ended."""

    async def publish(self, key: str, entries: Sequence[Entry]) -> None:
        """Append `entries` (positions increasing) to stream `key`. Entries at or before the
        stream's last position are refused (an earlier attempt still flushing after its retry
        began). Raises `BusUnavailable`."""

    def announce(self) -> str:
        """What the worker's identity says readers should read (`live=...`): never a secret."""


class Reader(Protocol):
    """A reader's side: the entries of stream `key` from `since` (a position), waiting up to
    `wait` seconds for the first one when there is none yet."""

    async def read(self, key: str, since: int, wait: float) -> Batch:
        """Raises `BusUnavailable`."""

    async def close(self) -> None: ...
