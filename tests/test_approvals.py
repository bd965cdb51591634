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


@tool(requires_approval=lambda amount: amount > 100)
def policy_refund(amount: int) -> str:
    """Refund money; over 100 EUR a person approves first.

    Args:
        amount: Euros.
    """
    RUNS["policy_refund"].append(str(amount))
    return f"refunded {amount} EUR"


def test_an_approval_policy_decides_per_call() -> None:
    assert policy_refund.needs_approval('{"amount": 500}')
    assert not policy_refund.needs_approval('{"amount": 30}')
    assert not policy_refund.needs_approval('{"amount": "lots"}'), "bad arguments need no approval"
    assert refund.needs_approval('{"amount": 1}')


async def test_only_the_calls_the_policy_names_wait_for_approval(
    time_env: WorkflowEnvironment,
) -> None:
    reply = calls(
        ("small", "policy_refund", {"amount": 30}), ("large", "policy_refund", {"amount": 500})
    )
    agent = Agent("policy", model=ScriptedModel("policy", [reply, "done"]), tools=[policy_refund])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("policy", "refund both")
        [pending] = await wait_pending(client, handle.id)
        ran_while_waiting = list(RUNS["policy_refund"])
        await client.decide(handle.id, "large", True, digest=pending.digest)
        result = await handle.result()
    assert (pending.tool_call_id, pending.kind) == ("large", "approval")
    assert ran_while_waiting == ["30"], "the small refund ran without waiting"
    assert sorted(RUNS["policy_refund"]) == ["30", "500"]
    assert [m.tool_call_id for m in tool_messages(result.messages)] == ["small", "large"]
