"""Shared fixtures of the component tests (test_call_book, test_conversation, test_outbox): a
fixed clock, one agent holding every kind of tool call, and short builders for messages."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from durable_agent import Agent, external_tool, long_running_tool, person, tool
from durable_agent.wire import (
    AssistantMessage,
    PendingCall,
    PendingKind,
    StatusEvent,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from durable_agent.workflows.call_book import OpenCall, Route

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def clock() -> datetime:
    """The fixed clock the components are lent instead of `workflow.now`."""
    return NOW


@tool
def lookup(order: str) -> str:
    """Look an order up.

    Args:
        order: The order number.
    """
    return order


@tool(requires_approval=True)
def refund(amount: int) -> str:
    """Refund an amount.

    Args:
        amount: In euros.
    """
    return f"refunded {amount}"


@long_running_tool()
def start_export(table: str) -> str:
    """Start exporting a table; the rows are signalled in.

    Args:
        table: The table.
    """
    return "queued"


@long_running_tool(requires_approval=True)
def start_purge(table: str) -> str:
    """Start purging a table once someone approved it.

    Args:
        table: The table.
    """
    return "queued"


@external_tool()
def ask_manager(question: str) -> str:
    """Ask a manager.

    Args:
        question: The question.
    """
    raise AssertionError("never runs")


# `external_tool()` has no approval option, but the loop honours one set on the Tool.
ask_board = dataclasses.replace(ask_manager, name="ask_board", requires_approval=True)

BILLING = Agent("billing", model="openai:gpt-4.1")
DESK = Agent(
    "desk",
    model="openai:gpt-4.1",
    instructions="Help.",
    tools=[lookup, refund, start_export, start_purge, ask_manager, ask_board],
    handoffs=[BILLING, person("manager")],
)
LOCAL_DESK = dataclasses.replace(DESK, name="local-desk", local_model=True)

KINDS = {
    "invocable": ("lookup", Route.INVOCABLE, False),
    "invocable+approval": ("refund", Route.INVOCABLE, True),
    "long_running": ("start_export", Route.LONG_RUNNING, False),
    "long_running+approval": ("start_purge", Route.LONG_RUNNING, True),
    "external": ("ask_manager", Route.EXTERNAL, False),
    "external+approval": ("ask_board", Route.EXTERNAL, True),
    "person": ("transfer_to_manager", Route.PERSON, False),
    "agent": ("transfer_to_billing", Route.AGENT, False),
    "unknown": ("no_such_tool", Route.UNKNOWN, False),
}
"""Every kind of call the model can make: the tool name it uses, its route, whether it needs
an approval first."""


def call(call_id: str, name: str, arguments: str = "{}") -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=arguments)


def pending(open_call: OpenCall, kind: PendingKind) -> PendingCall:
    """What the loop's `_wait` records for `open_call` waiting for `kind`."""
    return PendingCall(
        tool_call_id=open_call.call.id,
        name=open_call.call.name,
        arguments=open_call.call.arguments,
        kind=kind,
        agent="desk",
        since=NOW,
    )


def user(text: str) -> UserMessage:
    return UserMessage(content=text)


def asks(*calls: ToolCall, content: str | None = None) -> AssistantMessage:
    return AssistantMessage(content=content, tool_calls=list(calls), agent="desk")


def answer(call_id: str, content: str) -> ToolMessage:
    return ToolMessage(tool_call_id=call_id, name="lookup", content=content)


def status(source: str = "tool", kind: str = "tool_started") -> StatusEvent:
    return StatusEvent.model_validate({"source": source, "kind": kind, "at": NOW})
