"""How a turn ends, and why a run stops: closed sets of small values the loop matches on.

A turn ends in one `Outcome`. A run stops for exactly one reason, which is its last outcome
(`Final`, `Stop`, `BudgetSpent`), its cancellation, or a `RunFailure` raised by the component
that found it; `AgentWorkflow.run` turns each into the run's final state in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.exceptions import ApplicationError


@dataclass(frozen=True)
class Final:
    """The model answered without tool calls: the run ends. `output`: the typed value (JSON
    data) when the agent has an `output_type`."""

    output: Any = None


@dataclass(frozen=True)
class RunAgain:
    """Tool results or new messages are in: the model speaks next."""


@dataclass(frozen=True)
class HandedOff:
    """A handoff to another agent: it speaks next."""

    agent: str


@dataclass(frozen=True)
class Wait:
    """A conversation's answer is given: wait for the next user message."""


@dataclass(frozen=True)
class Stop:
    """A hook asked the run to stop."""

    reason: str


@dataclass(frozen=True)
class BudgetSpent:
    """The tree's budget is reached: no new model call."""

    reason: str


@dataclass(frozen=True)
class GuardrailTripped:
    """An input or output guardrail stopped the run."""

    guardrail: str
    kind: str
    reason: str


Outcome = Final | RunAgain | HandedOff | Wait | Stop | BudgetSpent | GuardrailTripped


class RunFailure(ApplicationError):
    """The run cannot go on (a model call failed, `max_turns`, a deadline that fails the run):
    non-retryable, so the run fails at once instead of retrying its workflow task for ever."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message, type=kind, non_retryable=True)
