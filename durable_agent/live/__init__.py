"""The live bus: token deltas travel here, beside the run, never through the workflow.

The model activity publishes a call's deltas to a per-call stream (`activities/streaming.py`);
readers (`AgentClient.events`, `serve`, AG-UI, `watch`) merge them with the run's durable items.
Losing the bus loses live text only: the message lands as it does unstreamed. Two engines:
the embedded one (each worker serves its calls' deltas over HTTP, no new service) and Redis
Streams for fleets, chosen by `DURABLE_AGENT_LIVE_URL` (`_settings.py`).
"""

from typing import TYPE_CHECKING

from ._deltas import DeltaRead, LiveDeltas, Located, locate
from ._embedded import EmbeddedReader, Store
from ._entries import EntryCodec
from ._merge import ITEMS_EVERY, RunDeltas, streamed_text
from ._protocol import (
    Batch,
    BusUnavailable,
    Entry,
    Publisher,
    Reader,
    position,
    stream_key,
    turn_of,
)
from ._settings import (
    ADVERTISE_VARIABLE,
    LIVE_URL_VARIABLE,
    EmbeddedPublisher,
    announced,
    close_publishers,
    identity,
    publisher,
    reader_for,
)

if TYPE_CHECKING:
    from ._redis import RedisBus

__all__ = [
    "ADVERTISE_VARIABLE",
    "ITEMS_EVERY",
    "LIVE_URL_VARIABLE",
    "Batch",
    "BusUnavailable",
    "DeltaRead",
    "EmbeddedPublisher",
    "EmbeddedReader",
    "Entry",
    "EntryCodec",
    "LiveDeltas",
    "Located",
    "Publisher",
    "Reader",
    "RedisBus",
    "RunDeltas",
    "Store",
    "announced",
    "close_publishers",
    "identity",
    "locate",
    "position",
    "publisher",
    "reader_for",
    "stream_key",
    "streamed_text",
    "turn_of",
]


def __getattr__(name: str) -> object:
    """`RedisBus` on first use: importing `redis.asyncio` at every start cost 71-95 ms (measured)
    (`_settings._redis_bus`)."""
    if name == "RedisBus":
        from ._redis import RedisBus

        return RedisBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
