"""Every name a run is known by outside its own code, in one place: the workflow type, its
signals, updates and queries, the activity types, the run's states and the kinds of status
events it records.

These are persisted compatibility data: open runs' histories and every client hold them, so a
name here is never renamed while runs are open (add, never rename). Readers match on these
constants instead of free strings, so a reader that forgets a kind or a state is a type error,
not a turn that never ends.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal, TypeAlias, get_args

WORKFLOW_TYPE: Final = "AgentWorkflow"
DEFAULT_TASK_QUEUE: Final = "durable-agent"


class Signal(StrEnum):
    """Signals `AgentWorkflow` takes."""

    TOOL_RESULT = "tool_result"
    APPROVAL = "approval"
    USER_MESSAGE = "user_message"
    CHILD_REPORT = "child_report"
    """From a sub-agent's run to its parent: what it waits for, what it has used."""
    BUDGET_EXCEEDED = "budget_exceeded"
    """From a parent to its sub-agents' runs: the tree's budget is spent."""


class Update(StrEnum):
    """Updates `AgentWorkflow` takes: each answers accepted, or why not."""

    SUBMIT_TOOL_RESULT = "submit_tool_result"
    SUBMIT_APPROVAL = "submit_approval"
    SUBMIT_USER_MESSAGE = "submit_user_message"
    INTERRUPT = "interrupt"


class Query(StrEnum):
    """Queries `AgentWorkflow` answers."""

    STATUS = "status"
    PENDING_TOOL_CALLS = "pending_tool_calls"
    HISTORY = "history"
    LIVE = "live"
    TRANSCRIPT = "transcript"
    SNAPSHOT = "snapshot"


# ---------------------------------------------------------------------- activity types

MODEL_ACTIVITY: Final = "model.complete"
SUMMARY_ACTIVITY: Final = "model.summarize"
"""Folds what falls out of the model's context window into a summary (`ContextPolicy`)."""
COUNT_ACTIVITY: Final = "model.count_tokens"
"""Counts a model call's prompt with the provider's token-counting endpoint, when the estimate
is near the window's limit (`ContextPolicy.count_tokens`)."""


def tool_activity(tool: str) -> str:
    """One activity type per tool."""
    return f"tool.{tool}"


def hook_activity(hook: str) -> str:
    """One activity type per hook."""
    return f"hook.{hook}"


def guardrail_activity(guardrail: str) -> str:
    """One activity type per guardrail."""
    return f"guardrail.{guardrail}"


def mcp_list_activity(server: str) -> str:
    """An MCP server's tool listing (one dynamic activity serves every MCP name)."""
    return f"mcp.{server}.list_tools"


def mcp_tool_activity(server: str, tool: str) -> str:
    """One of an MCP server's tools."""
    return f"mcp.{server}.{tool}"


# ---------------------------------------------------------------------- the run's state


class RunState(StrEnum):
    """Query `status`, `live`, and the `AgentStatus` search attribute."""

    RUNNING = "running"
    WAITING_FOR_TOOLS = "waiting_for_tools"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    WAITING_FOR_USER = "waiting_for_user"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BUDGET_EXCEEDED = "budget_exceeded"
    GUARDRAIL_TRIPPED = "guardrail_tripped"
    """An input or output guardrail stopped the run (README "Guardrails")."""


ENDED: Final = frozenset(
    {
        RunState.COMPLETED,
        RunState.FAILED,
        RunState.CANCELLED,
        RunState.BUDGET_EXCEEDED,
        RunState.GUARDRAIL_TRIPPED,
    }
)
"""The states a run never leaves: its stream is complete."""

WAITING: Final = frozenset(
    {RunState.WAITING_FOR_TOOLS, RunState.WAITING_FOR_APPROVAL, RunState.WAITING_FOR_USER}
)
"""The states in which the run waits for something from outside the workflow."""


# ---------------------------------------------------------------------- status events

EventKind: TypeAlias = Literal[
    # the run's life (source "agent")
    "run_started",
    "resumed",
    "continued_as_new",
    "turn_started",
    "stopped",
    "cancelled",
    "budget_exceeded",
    "handoff",
    "hook_ran",
    "hook_failed",
    "signal_ignored",
    "approval_received",
    "interrupt_received",
    "output_invalid",
    "output_valid",
    "guardrail_tripped",
    # the model call (source "llm")
    "model_called",
    "model_fallback",
    "interrupted",
    "context_compacted",
    # tool calls (source "tool")
    "tool_started",
    "tool_progress",
    "tool_finished",
    "tool_failed",
    "tool_rejected",
    "guardrail_refused",
    "waiting",
    "deadline_passed",
    "result_received",
    "sub_agent_started",
    "sub_agent_ended",
    "mcp_tools_listed",
    "mcp_list_failed",
]
"""The kinds of `StatusEvent` a run records. `StatusEvent.kind` stays a plain string on the
wire (a reader of an older or newer run still parses it); writers and readers use these."""

EVENT_KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)
