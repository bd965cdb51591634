"""External tools with a deadline: when no answer comes in time the model is told the call
timed out, or, with `fail_on_deadline`, the run fails. Time skips on the time-skipping server
while the test awaits the result."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, RunState, ScriptedModel, external_tool

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
    assert "timed out" in timeout.content
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
