"""The conversation as a durable stream: events, hooks, snapshots, continue-as-new."""

from __future__ import annotations

import asyncio

from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    HookContext,
    HookResult,
    ModelRequest,
    RunState,
    ScriptedModel,
    Snapshot,
    StatusEvent,
    ToolCall,
    ToolContext,
    ToolMessage,
    UserMessage,
    hook,
    long_running_tool,
    tool,
)

from .conftest import agent_client, calls
from .helpers import events, recording, wait_pending, wait_state
from .tools import RUNS, wait_for_it


@tool
def echo(text: str, ctx: ToolContext) -> str:
    """Echo.

    Args:
        text: What to echo.
    """
    ctx.progress("echoing", length=len(text))
    ctx.logger.info("echoed %d characters", len(text))
    return text


@long_running_tool()
def start_job(name: str, ctx: ToolContext) -> str:
    """Start a job.

    Args:
        name: The job.
    """
    RUNS["start_job"].append(ctx.tool_call_id)
    return "started"


async def test_events_are_in_the_stream_and_never_reach_the_model(
    time_env: WorkflowEnvironment,
) -> None:
    requests: list[ModelRequest] = []
    model = recording([calls(("c1", "echo", {"text": "hi"})), "done"], requests)
    agent = Agent("events", model=model, tools=[echo])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("events", "go")
        await handle.result()
        everything = await client.history(handle.id, ["agent", "llm", "tool"])
        only_tools = await client.history(handle.id, ["tool"])
        messages_only = await client.history(handle.id)
    kinds = [(i.source, i.kind) for i in everything.items if isinstance(i, StatusEvent)]
    for expected in [
        ("agent", "run_started"),
        ("agent", "turn_started"),
        ("llm", "model_called"),
        ("tool", "tool_started"),
        ("tool", "tool_progress"),
        ("tool", "tool_finished"),
    ]:
        assert expected in kinds
    assert events(everything.items, "tool_progress") == [
        {"message": "echoing", "length": 2},
        {"message": "echoed 2 characters", "level": "info"},
    ]
    assert {i.source for i in only_tools.items if isinstance(i, StatusEvent)} == {"tool"}
    assert not any(isinstance(i, StatusEvent) for i in messages_only.items)
    assert [type(i).__name__ for i in messages_only.items] == [
        "UserMessage",
        "AssistantMessage",
        "ToolMessage",
        "AssistantMessage",
    ]
    for request in requests:
        assert all(m.role != "event" for m in request.messages)
        assert "tool_progress" not in request.model_dump_json()


async def test_hooks_inject_at_the_safe_point_and_can_stop(time_env: WorkflowEnvironment) -> None:
    seen_by_hook: list[list[str]] = []

    @hook
    def reviewer(context: HookContext) -> HookResult:
        seen_by_hook.append([m.role for m in context.messages])
        if context.turn in (1, 2):
            note = UserMessage(content=f"Reviewer note {context.turn}", name="reviewer")
            return HookResult(inject=[note])
        return HookResult(stop=True, reason="enough")

    model = ScriptedModel(
        "hooked",
        [
            AssistantMessage(
                content="Looking.",
                tool_calls=[
                    ToolCall(id="a", name="echo", arguments='{"text": "one"}'),
                    ToolCall(id="b", name="echo", arguments='{"text": "two"}'),
                ],
            ),
            "An answer without a source.",
            AssistantMessage(
                content="Checking the source.",
                tool_calls=[ToolCall(id="c", name="echo", arguments='{"text": "src"}')],
            ),
            "never asked",
        ],
    )
    agent = Agent("hooked", model=model, tools=[echo], hooks=[reviewer])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("hooked", "question")
        result = await handle.result()
        stream = await client.history(handle.id, ["agent"])
    shape = [
        m.tool_call_id if isinstance(m, ToolMessage) else (m.content or "")[:16]
        for m in result.messages
    ]
    # Injections come after every tool result of the response, never between a call and its
    # result; an injection after a final answer gets an answer; a stop lets pending calls finish.
    assert shape == [
        "question",
        "Looking.",
        "a",
        "b",
        "Reviewer note 1",
        "An answer withou",
        "Reviewer note 2",
        "Checking the sou",
        "c",
    ]
    assert result.turns == 3
    assert result.final_text == "Checking the source."
    assert seen_by_hook[0] == ["user", "assistant"]
    assert [e["reason"] for e in events(stream.items, "stopped")] == ["enough"]


async def test_snapshot_resume_keeps_pending_calls_pending(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("snap", [calls(("j1", "start_job", {"name": "x"})), "job done"])
    agent = Agent("snap", model=model, tools=[start_job])
    async with agent_client(time_env.client, agent) as (client, _):
        original = await client.start("snap", "go")
        await wait_pending(client, original.id)
        snapshot = await client.snapshot(original.id)
        exported = snapshot.model_dump_json()
        await original.terminate("exported")
        resumed = await client.start("snap", snapshot=Snapshot.model_validate_json(exported))
        [pending] = await wait_pending(client, resumed.id)
        assert (pending.tool_call_id, pending.kind) == ("j1", "long_running")
        await client.resolve(resumed.id, "j1", "ok")
        result = await resumed.result()
    assert result.final_text == "job done"
    assert RUNS["start_job"] == ["j1"], "the resumed run did not start the job again"
    assert [m.tool_call_id for m in result.messages if isinstance(m, ToolMessage)] == ["j1"]


async def test_fork_from_the_first_messages(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("fork", lambda r: f"answer to {len(r.messages)} messages")
    agent = Agent("fork", model=model)
    async with agent_client(time_env.client, agent) as (client, _):
        first = await client.start("fork", "one", conversation=True)
        await wait_state(client, first.id, RunState.WAITING_FOR_USER)
        await client.say(first.id, "two")
        await wait_state(client, first.id, turn=2)
        snapshot = await client.snapshot(first.id)
        await first.terminate("forked")
        fork = await client.start("fork", snapshot=snapshot.prefix(1))
        result = await fork.result()
    assert [m.role for m in result.messages] == ["user", "assistant"]
    assert result.final_text == "answer to 1 messages"


async def test_continue_as_new_carries_everything_and_signals_apply_once(
    dev_env: WorkflowEnvironment,
) -> None:
    turns = 40
    script: list[str | AssistantMessage] = [
        calls((f"c{i}", "echo", {"text": "x" * 2000})) for i in range(turns - 1)
    ]
    script.insert(20, calls(("ext", "wait_for_it", {})))
    script.append("finished")

    @tool(name="echo")
    async def slow_echo(text: str) -> str:
        """Echo, slowly: a run must live 2 s before it may continue as new."""
        await asyncio.sleep(0.1)
        return text

    agent = Agent(
        "long", model=ScriptedModel("long", script), tools=[slow_echo, wait_for_it], max_turns=100
    )
    async with agent_client(dev_env.client, agent, max_cached_workflows=100) as (client, _):
        handle = await client.start("long", "go", continue_as_new_at_bytes=60_000)
        await wait_pending(client, handle.id)
        # Sent while the call waits, around continue-as-new boundaries: each applies once.
        await handle.signal("user_message", {"content": "first note"})
        await handle.signal("tool_result", {"tool_call_id": "ext", "content": "arrived"})
        await handle.signal("tool_result", {"tool_call_id": "ext", "content": "duplicate"})
        await handle.signal("user_message", {"content": "second note"})
        result = await handle.result()
        description = await client.handle(handle.id).describe()
        stream = await client.history(handle.id, ["agent"])
    assert result.final_text == "finished"
    assert result.turns == turns + 1
    ids = [m.tool_call_id for m in result.messages if isinstance(m, ToolMessage)]
    assert len(ids) == len(set(ids)) == turns
    notes = [m.content for m in result.messages if isinstance(m, UserMessage)]
    assert notes == ["go", "first note", "second note"]
    [ext] = [m for m in result.messages if isinstance(m, ToolMessage) and m.tool_call_id == "ext"]
    assert ext.content == "arrived"
    assert description.run_id != handle.first_execution_run_id, "the run continued as new"
    kinds = [e.kind for e in stream.items if isinstance(e, StatusEvent)]
    assert "continued_as_new" in kinds and "resumed" not in kinds
