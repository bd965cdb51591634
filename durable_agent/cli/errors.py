"""How a failed command reads: one line on stderr, no traceback (unless `--debug`)."""

from __future__ import annotations

import argparse

from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from .._causes import cause_message

__all__ = ["CliError", "error_line"]


class CliError(Exception):
    """A failure the user can fix: `main` prints its message as one line, no traceback."""


def error_line(exc: BaseException, args: argparse.Namespace) -> str:
    """One line for stderr that says what went wrong."""
    if isinstance(exc, WorkflowUpdateFailedError):
        line = f"refused: {exc.cause or exc}"
    elif (
        isinstance(exc, RPCError)
        and exc.status is RPCStatusCode.NOT_FOUND
        and (workflow_id := getattr(args, "workflow_id", None))
    ):
        ended = "already completed" in exc.message  # the server's words for a closed run
        line = (
            f"error: run {workflow_id} has ended"
            if ended
            else f"error: no run with id {workflow_id}"
        )
    elif isinstance(exc, RPCError):
        line = f"error: {exc.message}"
    elif isinstance(exc, WorkflowFailureError):
        line = f"error: the run failed: {cause_message(exc)}"
    elif isinstance(exc, CliError):
        line = f"error: {exc}"
    else:
        line = f"error: {type(exc).__name__}: {exc} (--debug shows the traceback)"
    return " ".join(line.split())
