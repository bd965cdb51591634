"""The loop on the time-skipping server with a scripted model."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from durable_agent import (
    Agent,
    AgentRunInput,
    AgentRunResult,
    ModelRequest,
    ModelResponse,
    RunState,
    ScriptedModel,
    ToolMessage,
    tool,
)
from durable_agent.workflows.agent_workflow import AgentWorkflow

from .conftest import agent_client, calls, eventually, new_id, serving
from .helpers import recording, wait_pending
from .tools import wait_for_it


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


@pytest.mark.parametrize("sandboxed", [False, True], ids=["unsandboxed", "sandboxed"])
async def test_parallel_tool_calls_are_answered_in_call_order(
    time_env: WorkflowEnvironment, sandboxed: bool
) -> None:
    """Workers run AgentWorkflow unsandboxed by default; users may opt back in."""
    model = ScriptedModel(
        "adder",
        [
            calls(("c1", "add", '{"a": 1, "b": 2}'), ("c2", "add", '{"a": 3, "b": 4}')),
            "3 and 7",
        ],
    )
    agent = Agent("adder", model=model, tools=[add])
    runner = {"workflow_runner": SandboxedWorkflowRunner()} if sandboxed else {}
    async with serving(time_env.client, agent, **runner) as worker:
        result = await time_env.client.execute_workflow(
            AgentWorkflow.run,
            AgentRunInput(agent="adder", prompt="add"),
            id=new_id(),
            task_queue=worker.task_queue,
            result_type=AgentRunResult,
        )
    assert result.final_text == "3 and 7"
    tool_messages = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert [(m.tool_call_id, m.content) for m in tool_messages] == [("c1", "3"), ("c2", "7")]
    assert result.turns == 2
    assert result.usage.requests == 2


async def test_model_sees_the_whole_conversation_across_a_worker_restart(
    time_env: WorkflowEnvironment,
) -> None:
    """Model calls carry only new messages; the provider still gets the whole conversation,
    from the activity's cache or, on a new worker, from the workflow's `transcript` query."""
    requests: list[ModelRequest] = []
    replies = [
        calls(("c1", "add", '{"a": 1, "b": 2}')),
        calls(("c2", "wait_for_it", "{}")),
        "done",
    ]
    model = recording(replies, requests)
    agent = Agent("restarts", model=model, tools=[add, wait_for_it])
    async with agent_client(time_env.client, agent) as (client, worker):
        handle = await client.start("restarts", "go")
        await wait_pending(client, handle.id)
    async with serving(time_env.client, agent, task_queue=worker.task_queue):
        await client.resolve(handle.id, "c2", "here it is")
        result = await handle.result()
    assert result.final_text == "done"
    assert [[m.role for m in r.messages] for r in requests] == [
        ["user"],
        ["user", "assistant", "tool"],
        ["user", "assistant", "tool", "assistant", "tool"],
    ]


class StalledProvider:
    """A model server that never answers."""

    async def complete(self, request: ModelRequest, model_name: str) -> ModelResponse:
        await asyncio.sleep(60)
        raise AssertionError("cancelled long before")


async def test_cancelling_a_run_during_a_model_call_ends_it_cancelled(
    dev_env: WorkflowEnvironment,
) -> None:
    """Not a failed model call: the run ends cleanly as cancelled, with a result."""
    agent = Agent("stalled", model="stalled:model")
    providers = {"stalled": StalledProvider()}
    async with agent_client(dev_env.client, agent, providers=providers) as (client, _):
        handle = await client.start("stalled", "hello?")
        await eventually(lambda: _model_called(dev_env, handle.id), "the model call")
        await client.cancel(handle.id)
        result = await handle.result()
        status = await client.status(handle.id)
    assert result.outcome == "cancelled"
    assert result.pending == []
    assert status.state is RunState.CANCELLED


async def _model_called(env: WorkflowEnvironment, workflow_id: str) -> bool:
    """The model activity is running (history records its start only when it ends)."""
    described = await env.client.get_workflow_handle(workflow_id).describe()
    return any(
        a.activity_type.name == "model.complete"
        and a.attempt >= 1
        and a.HasField("last_started_time")
        for a in described.raw_description.pending_activities
    )
