"""Fast mode (local activities) keeps the loop's promises: a failing tool's error goes back to
the model, and a failing model fails the run with a clear error."""

from __future__ import annotations

from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    HookContext,
    ModelRequest,
    ScriptedModel,
    ToolMessage,
    hook,
    tool,
)
from durable_agent.activities.transcripts import TranscriptCache
from durable_agent.client import AgentClient

from .conftest import agent_client, calls, run_error, serving_with_caches
from .helpers import events

ONCE = RetryPolicy(maximum_attempts=1)


async def remote_activities(env: WorkflowEnvironment, workflow_id: str) -> list[str]:
    """Activity types the run scheduled through the server; local ones leave markers only."""
    scheduled = []
    async for event in env.client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled.append(event.activity_task_scheduled_event_attributes.activity_type.name)
    return scheduled


@tool(local=True, retry=ONCE)
def flaky(kind: str) -> str:
    """Fails.

    Args:
        kind: retryable or not.
    """
    if kind == "final":
        raise ApplicationError("the disk is gone", non_retryable=True)
    raise RuntimeError("try later")


async def test_a_failing_local_tool_answers_the_model_with_its_error(
    time_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel(
        "fast-tools",
        [calls(("a", "flaky", {"kind": "final"}), ("b", "flaky", {"kind": "again"})), "sorry"],
    )
    agent = Agent("fast-tools", model=model, tools=[flaky], local_model=True)
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("fast-tools", "go")
        result = await handle.result()
    assert result.final_text == "sorry"
    assert await remote_activities(time_env, handle.id) == [], "every call ran locally"
    errors = {m.tool_call_id: m.content for m in result.messages if isinstance(m, ToolMessage)}
    assert "the disk is gone" in errors["a"]
    assert "try later" in errors["b"]


async def test_a_failing_local_model_fails_the_run_as_a_model_call_failure(
    time_env: WorkflowEnvironment,
) -> None:
    def broken(request: ModelRequest) -> str:
        raise ApplicationError("the model server is down", non_retryable=True)

    agent = Agent("fast-broken", model=ScriptedModel("fast-broken", broken), local_model=True)
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("fast-broken", "go")
        cause = await run_error(handle)
        status = await client.status(handle.id)
    assert cause.type == "ModelCallFailed"
    assert "the model server is down" in str(cause)
    assert status.state == "failed"


@hook(local=True)
def broken_hook(ctx: HookContext) -> None:
    raise ApplicationError("the hook's store is gone", non_retryable=True)


async def test_a_failing_local_hook_is_recorded_and_the_run_goes_on(
    time_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel("fast-hooked", ["fine"])
    agent = Agent("fast-hooked", model=model, hooks=[broken_hook], local_model=True)
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("fast-hooked", "go")
        result = await handle.result()
        page = await client.history(handle.id, events=["agent"])
    assert result.final_text == "fine"
    assert await remote_activities(time_env, handle.id) == [], "every call ran locally"
    failed = events(page.items, "hook_failed")
    assert len(failed) == 1 and "the hook's store is gone" in failed[0]["error"]


async def test_a_local_hook_whose_worker_lacks_the_conversation_gets_it_whole(
    time_env: WorkflowEnvironment,
) -> None:
    """A cache that keeps nothing: the hook's worker lacks the conversation."""
    seen: list[list[str]] = []

    @hook(local=True)
    def watcher(ctx: HookContext) -> None:
        seen.append([m.role for m in ctx.messages])

    model = ScriptedModel("fast-watched", ["fine"])
    agent = Agent("fast-watched", model=model, hooks=[watcher])
    forgetful = TranscriptCache(max_runs=0)
    async with serving_with_caches(time_env.client, agent, forgetful) as (queue, models):
        handle = await AgentClient(time_env.client, queue).start("fast-watched", "go")
        result = await handle.result()
    assert result.final_text == "fine"
    assert await remote_activities(time_env, handle.id) == ["model.complete"], (
        "the hook ran locally"
    )
    assert seen == [["user", "assistant"]]
    assert models.transcripts.misses == 1
