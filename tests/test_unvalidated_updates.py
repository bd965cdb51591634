"""Updates whose validator never ran. The SDK skips an update's validator when it takes the
update for a replayed one, and in fault storm (d) SDK core 1.35 did so for live updates that no
validator had seen (delivered with a workflow task whose history had moved on): a malformed
result reached the handler, raised, and failed the workflow task. The handler checks again, so
what the validator would refuse fails the update and leaves the run as it was.

A worker interceptor that skips validators stands in for the SDK here: it is what the SDK does
for such an update (`DoUpdate.run_validator` false)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from durable_agent import Agent, ScriptedModel, tool

from .conftest import agent_client, calls, tool_messages
from .helpers import result_unless_stuck, wait_pending
from .tools import ask_manager

ASK = '{"question": "?"}'


@tool(requires_approval=True)
def pay(amount: int) -> str:
    """Pay out, once a person approves.

    Args:
        amount: Dollars.
    """
    return f"paid {amount}"


class _NoValidators(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        return None  # as the SDK does for an update it takes for a replayed one


class SkipValidators(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _NoValidators


async def refused(send: Awaitable[object]) -> ApplicationError:
    """The error of an update the run must refuse (bounded: a failing task would hang it)."""
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await asyncio.wait_for(send, 30)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), f"not refused by the run: {cause!r}"
    return cause


async def test_an_update_whose_validator_did_not_run_is_refused_by_its_handler(
    time_env: WorkflowEnvironment,
) -> None:
    replies = [
        calls(
            ("m1", "ask_manager", ASK), ("a1", "pay", '{"amount": 40}'), ("m2", "ask_manager", ASK)
        ),
        "finished",
    ]
    agent = Agent(
        "unvalidated", model=ScriptedModel("unvalidated", replies), tools=[ask_manager, pay]
    )
    async with agent_client(time_env.client, agent, interceptors=[SkipValidators()]) as (
        client,
        _,
    ):
        handle = await client.start("unvalidated", "go")
        await wait_pending(client, handle.id, ids=["m1", "a1", "m2"])
        malformed = await refused(handle.execute_update("submit_tool_result", []))
        unknown = await refused(client.resolve(handle.id, "m404", "lost?"))
        wrong_kind = await refused(client.resolve(handle.id, "a1", "not a result"))
        bad_interrupt = await refused(handle.execute_update("interrupt", {"content": 5}))
        bad_message = await refused(handle.execute_update("submit_user_message", {}))
        await client.resolve(handle.id, "m1", "first")
        second_result = await refused(client.resolve(handle.id, "m1", "second"))
        await client.decide(handle.id, "a1", False, "too much")
        second_decision = await refused(client.decide(handle.id, "a1", True))
        await client.resolve(handle.id, "m2", "last")  # the response's last call: it moves on
        result = await result_unless_stuck(handle)
    assert "malformed ToolResultSignal" in malformed.message
    assert "unknown tool_call_id m404" in unknown.message
    assert "does not take a result signal" in wrong_kind.message
    assert "malformed InterruptRequest" in bad_interrupt.message
    assert "malformed UserMessageSignal" in bad_message.message
    assert "already has a result" in second_result.message
    assert "already decided" in second_decision.message
    refusals = (malformed, unknown, wrong_kind, bad_interrupt, bad_message, second_result)
    assert {e.type for e in (*refusals, second_decision)} == {"UpdateRefused"}
    answers = {m.tool_call_id: str(m.content) for m in tool_messages(result.messages)}
    assert answers["m1"] == "first"
    assert "rejected" in answers["a1"] and "too much" in answers["a1"]
    assert answers["m2"] == "last"
    assert result.final_text == "finished"
