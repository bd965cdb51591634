"""Tools that need a person's approval: the call waits, runs only once approved, and a
rejection goes back to the model with its reason."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, RunState, ScriptedModel, tool
from durable_agent.wire import arguments_digest

from .conftest import agent_client, calls, tool_messages
from .helpers import events, wait_pending
from .tools import RUNS


@tool(requires_approval=True)
def refund(amount: int) -> str:
    """Refund money to the customer.

    Args:
        amount: Euros.
    """
    RUNS["refund"].append(str(amount))
    return f"refunded {amount} EUR"


async def test_approved_call_runs(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("approve", [calls(("r1", "refund", {"amount": 30})), "refunded"])
    agent = Agent("approve", model=model, tools=[refund])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("approve", "refund me")
        [pending] = await wait_pending(client, handle.id)
        status = await client.status(handle.id)
        ran_before_approval = list(RUNS["refund"])
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await client.resolve(handle.id, "r1", "refunded 1000000 EUR")
        decision = await client.decide(handle.id, "r1", True)
        result = await handle.result()
        stream = await client.history(handle.id, ["agent", "tool"])
    assert (pending.tool_call_id, pending.kind) == ("r1", "approval")
    assert status.state is RunState.WAITING_FOR_APPROVAL
    assert ran_before_approval == []
    assert "does not take a result signal" in str(refused.value.cause)
    assert decision.detail == "approved"
    assert RUNS["refund"] == ["30"]
    [message] = tool_messages(result.messages)
    assert (message.content, message.is_error) == ("refunded 30 EUR", False)
    assert events(stream.items, "approval_received") == [{"tool_call_id": "r1", "approved": True}]


async def test_rejected_call_never_runs_and_the_model_hears_why(
    time_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel("reject", [calls(("r1", "refund", {"amount": 9000})), "sorry"])
    agent = Agent("reject", model=model, tools=[refund])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("reject", "refund me")
        await wait_pending(client, handle.id)
        status = await client.status(handle.id)
        decision = await client.decide(handle.id, "r1", False, reason="over the refund limit")
        with pytest.raises(WorkflowUpdateFailedError):
            await client.decide(handle.id, "r1", True)  # a decision is final
        result = await handle.result()
    assert status.state is RunState.WAITING_FOR_APPROVAL
    assert decision.detail == "rejected"
    assert RUNS["refund"] == [], "a rejected call's activity never runs"
    [message] = tool_messages(result.messages)
    assert message.tool_call_id == "r1"
    assert message.is_error
    assert "over the refund limit" in message.content
    assert result.final_text == "sorry"


async def test_a_decision_is_bound_to_the_arguments_it_was_made_on(
    time_env: WorkflowEnvironment,
) -> None:
    """The pending approval shows the arguments and their digest; a decision carrying another
    digest is refused, one carrying the call's is taken."""
    model = ScriptedModel("bound", [calls(("r1", "refund", {"amount": 70})), "refunded"])
    agent = Agent("bound", model=model, tools=[refund])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("bound", "refund me")
        [pending] = await wait_pending(client, handle.id)
        seen_elsewhere = arguments_digest("refund", '{"amount": 7000}')
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await client.decide(handle.id, "r1", True, digest=seen_elsewhere)
        decision = await client.decide(handle.id, "r1", True, digest=pending.digest)
        result = await handle.result()
    assert pending.arguments == '{"amount": 70}'
    assert pending.digest == arguments_digest("refund", '{"amount": 70}')
    assert "made on other arguments" in str(refused.value.cause)
    assert decision.detail == "approved"
    assert RUNS["refund"] == ["70"]
    assert result.final_text == "refunded"
