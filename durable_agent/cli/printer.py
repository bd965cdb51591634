"""How the CLI prints a live run (`watch`, `run`): the model's reply as it streams, then every
item as it lands, in `_render`'s style, with the reply's text printed once."""

from __future__ import annotations

from collections.abc import Collection
from typing import TextIO

from .._follow import kind_of
from .._render import render
from ..wire import AssistantMessage, EventSource, LiveEvent, StatusEvent

__all__ = ["INTERRUPTED", "RETRYING", "LivePrinter"]

RETRYING = " [retrying]"
"""Ends a streamed line whose call is tried again: the retried text follows on a new line."""
INTERRUPTED = " [interrupted]"
"""Ends a streamed line that an interrupt cut off (the run's `interrupted` event holds it)."""
UNAVAILABLE = " [live text unavailable]"
"""Ends a streamed line when the live bus cannot be read: the message is printed whole."""


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
        elif event.delta is not None and event.delta.kind == "unavailable":
            self._end_line(UNAVAILABLE)  # the message, when it lands, is printed whole
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
        kind = kind_of(event)
        if kind == "turn_started":
            self._speaker = str(event.data.get("agent") or self._speaker)
        if kind == "interrupted" and self._prefix is not None:
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
