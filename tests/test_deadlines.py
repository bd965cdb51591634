"""Waiting calls with a deadline: when no answer or approval comes in time the model is told
the call timed out, or, with `fail_on_deadline`, the run fails. Time skips on the time-skipping
server while the test awaits the result."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, RunState, ScriptedModel, external_tool, tool

from .conftest import agent_client, calls, run_error, tool_messages
from .helpers import events, wait_pending


@external_tool(deadline=timedelta(days=2))
def ask_slowly(question: str) -> str:
    """Ask someone who may never answer.

    Args:
        question: The question.
    """
    raise AssertionError("an external tool's body never runs")


@external_tool(deadline=timedelta(days=2), fail_on_deadline=True)
def ask_or_fail(question: str) -> str:
    """Ask; no answer within two days fails the run.

    Args:
        question: The question.
    """
    raise AssertionError("an external tool's body never runs")


async def test_deadline_tells_the_model_the_call_timed_out(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("slow", [calls(("s1", "ask_slowly", {"question": "?"})), "gave up"])
    agent = Agent("slow", model=model, tools=[ask_slowly])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("slow", "go")
        [pending] = await wait_pending(client, handle.id)
        result = await handle.result()  # time skips past the two-day deadline
        stream = await client.history(handle.id, ["tool"])
    assert pending.deadline is not None
    assert pending.deadline - pending.since == timedelta(days=2)
    [timeout] = tool_messages(result.messages)
    assert timeout.tool_call_id == "s1"
    assert timeout.is_error
    assert timeout.content == "ask_slowly timed out: no result within 2 days"
    assert result.final_text == "gave up"
    assert events(stream.items, "deadline_passed") == [{"tool": "ask_slowly", "tool_call_id": "s1"}]


async def test_deadline_with_fail_on_deadline_fails_the_run(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("strict", [calls(("f1", "ask_or_fail", {"question": "?"})), "never"])
    agent = Agent("strict", model=model, tools=[ask_or_fail])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("strict", "go")
        cause = await run_error(handle)
        status = await client.status(handle.id)
    assert cause.type == "ToolDeadlineExceeded"
    assert cause.non_retryable
    assert "f1" in str(cause)
    assert status.state is RunState.FAILED


@tool(requires_approval=True, deadline=timedelta(minutes=90))
def refund(order: str) -> str:
    """Refund an order, once a person approves.

    Args:
        order: The order.
    """
    raise AssertionError("never approved, so never runs")


async def test_an_approval_deadline_reads_like_any_other(time_env: WorkflowEnvironment) -> None:
    """Regression: a passed approval deadline said "no approval for refund within 1:30:00" where
    other waiting calls said they timed out."""
    model = ScriptedModel("refunds", [calls(("r1", "refund", {"order": "A-1"})), "sorry"])
    agent = Agent("refunds", model=model, tools=[refund])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("refunds", "refund A-1")
        [pending] = await wait_pending(client, handle.id)
        result = await handle.result()
    assert pending.kind == "approval"
    [timeout] = tool_messages(result.messages)
    assert timeout.is_error
    assert timeout.content == "refund timed out: no approval within 90 min"
