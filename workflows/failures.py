"""How the loop's activity calls fail. Deterministic helpers for workflow code."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from durable_agent._causes import innermost

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
    return str(innermost(exc))
