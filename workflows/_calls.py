"""How the loop's activity calls fail, and the retry with the whole conversation that a local
call needs when its worker lacks it. Deterministic helpers for workflow code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from durable_agent.wire import TRANSCRIPT_MISS

_Input = TypeVar("_Input")
_Output = TypeVar("_Output")

CALL_FAILED = (ActivityError, ApplicationError)
"""How a failed call surfaces: an activity's failure as ActivityError; a local activity's
non-retryable failure as the ApplicationError itself."""


def reraise_cancellation(exc: BaseException) -> None:
    """A call cancelled because the run is being cancelled ends the run as cancelled, not as
    a failed call."""
    if is_cancelled_exception(exc):
        raise exc


async def whole_on_miss(
    call: Callable[[_Input], Awaitable[_Output]], first: _Input, whole: Callable[[], _Input]
) -> _Output:
    """Call with a reference to the conversation; if a local call's worker lacks it (a local
    activity cannot query its own run), call again with the conversation itself."""
    try:
        return await call(first)
    except CALL_FAILED as exc:
        cause = exc.cause if isinstance(exc, ActivityError) else exc
        if not (isinstance(cause, ApplicationError) and cause.type == TRANSCRIPT_MISS):
            raise
    return await call(whole())


def cause_text(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc)
