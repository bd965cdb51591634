"""What a failure was really about. Temporal reports a failure wrapped in the layers that passed
it on (`WorkflowFailureError` from `ChildWorkflowError` from `ActivityError` from the tool's
`ApplicationError`); a person, a model or an AG-UI client wants the innermost one. Pure code,
so the loop uses it too."""

from __future__ import annotations

__all__ = ["cause_message", "cause_type", "innermost"]


def innermost(exc: BaseException) -> BaseException:
    """The end of `exc`'s `__cause__` chain (`exc` itself when nothing caused it)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def cause_message(exc: BaseException) -> str:
    """The innermost cause's message: Temporal's failures keep it in `.message`; an exception
    with no text at all is named by its type."""
    cause = innermost(exc)
    return getattr(cause, "message", None) or str(cause) or type(cause).__name__


def cause_type(exc: BaseException) -> str | None:
    """The innermost cause's failure type (an `ApplicationError`'s `type`, e.g.
    `UnknownAgent`), None when it has none."""
    found = getattr(innermost(exc), "type", None)
    return found if isinstance(found, str) else None
