"""How the loop's activity calls fail. Deterministic helpers for workflow code."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

__all__ = ["CALL_FAILED", "cause_text", "is_cancelled_exception", "reraise_cancellation"]

CALL_FAILED = (ActivityError, ApplicationError)
"""How a failed call surfaces: an activity's failure as ActivityError; a local activity's
non-retryable failure as the ApplicationError itself."""


def reraise_cancellation(exc: BaseException) -> None:
    """A call cancelled because the run is being cancelled ends the run as cancelled, not as
    a failed call."""
    if is_cancelled_exception(exc):
        raise exc


def cause_text(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc)
