"""What a running tool may know about its call (`ToolContext`), as a parameter or through
`tool_context()`; its log records become progress events of the call."""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any

from ..wire import StatusEvent

__all__ = ["ToolContext", "current_context", "tool_context"]


@dataclass
class ToolContext:
    """What a running tool may know about its call. `tool_call_id` is an idempotency key."""

    workflow_id: str
    run_id: str
    tool_call_id: str
    tool_name: str
    agent: str
    attempt: int = 1
    events: list[StatusEvent] = field(default_factory=list)

    def progress(self, message: str, **data: Any) -> None:
        """Record a progress event in the run's conversation stream (never sent to the model)."""
        self.events.append(
            StatusEvent(source="tool", kind="tool_progress", data={"message": message, **data})
        )

    @property
    def logger(self) -> logging.Logger:
        """A logger whose INFO and higher records also become progress events of this call."""
        logger = logging.getLogger(f"durable_agent.tools.{self.tool_name}")
        if not any(isinstance(h, _ProgressHandler) for h in logger.handlers):
            logger.addHandler(_ProgressHandler())
            logger.setLevel(logging.INFO)
        return logger


class _ProgressHandler(logging.Handler):
    """Turns log records of a running tool into progress events; other records pass by."""

    def emit(self, record: logging.LogRecord) -> None:
        context = current_context.get(None)
        if context is not None:
            context.progress(record.getMessage(), level=record.levelname.lower())


current_context: contextvars.ContextVar[ToolContext] = contextvars.ContextVar("tool_context")


def tool_context() -> ToolContext:
    """The context of the tool call being executed, for tools that do not take it as a parameter."""
    try:
        return current_context.get()
    except LookupError:
        raise RuntimeError("tool_context() is only available while a tool runs") from None
