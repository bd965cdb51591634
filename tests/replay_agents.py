"""Agents behind the recorded histories in tests/histories/. Change them only together with a
re-recording (`python -m tests.record_histories`): the replay test is the guard that catches
workflow changes which would break runs already open."""

from __future__ import annotations

import json

from durable_agent import (
    Agent,
    AssistantMessage,
    ScriptedModel,
    ToolCall,
    external_tool,
    long_running_tool,
    person,
    tool,
)

TASK_QUEUE = "replay-fixtures"


@tool
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: What to look up.
    """
    # Over 1 KB, so that the next model call sends it by ref (recorded from everything-v3 on).
    return f"value of {key}: " + "data " * 300


@tool(requires_approval=True)
def delete_account(user: str) -> str:
    """Delete a user's account.

    Args:
        user: Whose.
    """
    return f"deleted {user}"


@long_running_tool()
def start_export(table: str) -> str:
    """Start an export job.

    Args:
        table: Which table.
    """
    return "queued"


@external_tool()
def ask_manager(question: str) -> str:
    """Ask a manager.

    Args:
        question: The question.
    """
    raise NotImplementedError


def _call(call_id: str, name: str, **args: object) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=json.dumps(args))


specialist = Agent(
    "specialist",
    model=ScriptedModel(
        "specialist",
        [
            # The turns before the handoff were the triage agent's.
            "",
            "",
            AssistantMessage(tool_calls=[_call("h2", "transfer_to_billing_team")]),
            "All settled.",
        ],
    ),
    handoffs=[person("billing team")],
)

triage = Agent(
    "triage",
    model=ScriptedModel(
        "triage",
        [
            AssistantMessage(
                content="Working on it.",
                tool_calls=[
                    _call("c1", "lookup", key="plan"),
                    _call("c2", "delete_account", user="bob"),
                    _call("c3", "start_export", table="invoices"),
                    _call("c4", "ask_manager", question="refund?"),
                    _call("c5", "lookup", key=7),
                ],
            ),
            AssistantMessage(tool_calls=[_call("h1", "transfer_to_specialist")]),
        ],
    ),
    tools=[lookup, delete_account, start_export, ask_manager],
    handoffs=[specialist],
)

agents = [triage]
