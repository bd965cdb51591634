"""What observers of a live run read: the model's reply while it streams, and one page of
the run's stream (messages, status events and deltas) from a cursor.

Deltas are published by the model activity while the call runs, to the live bus beside the run
(`durable_agent.live`), never through the workflow; they are shown to people and never sent to
a model. Readers merge them with the run's items: a call's deltas come before its message.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import limits
from ._conversation import Data, Item
from .names import RunState

DELTAS_TOPIC = "deltas"
"""The Workflow Streams topic runs received `ModelDelta` signals on before issue 20: recorded
histories hold it; nothing publishes to it now."""


class ModelDelta(Data):
    """A piece of the reply of the model call of `turn` (its `attempt`-th try).

    `text`: more text. `tool_call`: the model started a call (`tool_call_id`, `name`).
    `superseded`: the call was tried again; drop what earlier attempts of this turn streamed.
    `unavailable`: the live bus cannot be read now (`text` says why): the message still lands
    whole; only a reader makes it, never the model activity.
    """

    turn: int
    attempt: int = 1
    kind: Literal["text", "tool_call", "superseded", "unavailable"]
    text: str = ""
    tool_call_id: str | None = None
    name: str | None = None
    offset: int | None = None
    """Set when read back: its place in the run's stream (a cursor goes on from offset + 1)."""


class LiveQuery(Data):
    """`live` query: the stream from `items` (an index into messages and events, as in
    `history`). `deltas` (a live-bus position) is echoed back as `next_deltas`."""

    items: int = Field(default=0, ge=0)
    deltas: int = Field(default=0, ge=0)
    max_bytes: int = Field(default=limits.HISTORY_PAGE_BYTES, ge=1)


class LivePage(Data):
    items: list[Item]
    next_items: int
    deltas: list[ModelDelta]
    """Empty: deltas are read from the live bus (kept so that readers of either version read
    pages of the other)."""
    next_deltas: int
    more: bool = False
    """More is ready now: read again without waiting."""
    state: RunState
    streaming: bool = False
    """A model call is in flight: observers read its deltas from the live bus."""
    done: bool = False
    """The run has ended and this page holds the last of its stream."""


class LiveEvent(Data):
    """One event of `AgentClient.events` (and of the SSE endpoint). `id` is the cursor after
    it: pass it as `after` (or SSE `Last-Event-ID`) to resume from the next event."""

    id: str
    type: Literal["item", "delta", "state", "end"]
    item: Item | None = None
    delta: ModelDelta | None = None
    state: RunState


def cursor(items: int, deltas: int) -> str:
    return f"{items}.{deltas}"


def parse_cursor(text: str | None) -> tuple[int, int]:
    """`"12.40"` -> (12, 40); None or "" -> the start. Raises ValueError naming the format."""
    if not text:
        return 0, 0
    items, sep, deltas = text.partition(".")
    try:
        parsed = int(items), int(deltas) if sep else 0
    except ValueError:
        expected = "expected '<items>.<deltas>', e.g. '12.40'"
        raise ValueError(f"bad cursor {text!r}: {expected}") from None
    if parsed[0] < 0 or parsed[1] < 0:
        raise ValueError(f"bad cursor {text!r}: numbers must not be negative")
    return parsed
