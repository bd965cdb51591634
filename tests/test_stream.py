"""The conversation as a durable stream: events, hooks, snapshots, continue-as-new."""

from __future__ import annotations

import asyncio
import json

from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    HookContext,
    HookResult,
    ModelRequest,
    ScriptedModel,
    StatusEvent,
    ToolCall,
    ToolContext,
    ToolMessage,
    UserMessage,
    external_tool,
    hook,
    long_running_tool,
    tool,
)
from durable_agent.client import AgentClient

from .conftest import serving

STARTED: list[str] = []


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
    STARTED.append(ctx.tool_call_id)
    return "started"


def call(call_id: str, tool_name: str, /, **args: object) -> AssistantMessage:
    return AssistantMessage(
        tool_calls=[ToolCall(id=call_id, name=tool_name, arguments=json.dumps(args))]
    )


async def wait_pending(client: AgentClient, workflow_id: str, count: int = 1) -> None:
    for _ in range(200):
        if len(await client.pending(workflow_id)) == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no pending call")


async def test_events_are_in_the_stream_and_never_reach_the_model(
    time_env: WorkflowEnvironment,
) -> None:
    requests: list[ModelRequest] = []
    replies = [call("c1", "echo", text="hi"), "done"]

    def script(request: ModelRequest) -> AssistantMessage:
        requests.append(request)
        reply = replies[len(requests) - 1]
        return reply if isinstance(reply, AssistantMessage) else AssistantMessage(content=reply)

    agent = Agent("events", model=ScriptedModel("events", script), tools=[echo])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
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
    progress = [
        i.data for i in everything.items if isinstance(i, StatusEvent) and i.kind == "tool_progress"
    ]
    assert progress == [
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
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("hooked", "question")
        result = await handle.result()
        events = await client.history(handle.id, ["agent"])
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
    stopped = [e for e in events.items if isinstance(e, StatusEvent) and e.kind == "stopped"]
    assert [e.data["reason"] for e in stopped] == ["enough"]


async def test_snapshot_resume_keeps_pending_calls_pending(time_env: WorkflowEnvironment) -> None:
    STARTED.clear()
    model = ScriptedModel("snap", [call("j1", "start_job", name="x"), "job done"])
    agent = Agent("snap", model=model, tools=[start_job])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        original = await client.start("snap", "go")
        await wait_pending(client, original.id)
        snapshot = await client.snapshot(original.id)
        exported = snapshot.model_dump_json()
        await original.terminate("exported")

        from durable_agent import Snapshot

        resumed = await client.start("snap", snapshot=Snapshot.model_validate_json(exported))
        await wait_pending(client, resumed.id)
        [pending] = await client.pending(resumed.id)
        assert (pending.tool_call_id, pending.kind) == ("j1", "long_running")
        await client.resolve(resumed.id, "j1", "ok")
        result = await resumed.result()
    assert result.final_text == "job done"
    assert STARTED == ["j1"], "the resumed run did not start the job again"
    assert [m.tool_call_id for m in result.messages if isinstance(m, ToolMessage)] == ["j1"]


async def test_fork_from_the_first_messages(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("fork", lambda r: f"answer to {len(r.messages)} messages")
    agent = Agent("fork", model=model)
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        first = await client.start("fork", "one", conversation=True)
        for _ in range(200):
            if (await client.status(first.id)).state == "waiting_for_user":
                break
            await asyncio.sleep(0.05)
        await client.say(first.id, "two")
        for _ in range(200):
            if (await client.status(first.id)).turn == 2:
                break
            await asyncio.sleep(0.05)
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
    script = [call(f"c{i}", "echo", text="x" * 2000) for i in range(turns - 1)]
    script.insert(20, call("ext", "wait_for_it"))
    script.append("finished")  # type: ignore[arg-type]

    @external_tool()
    def wait_for_it() -> str:
        """Wait."""
        raise NotImplementedError

    @tool(name="echo")
    async def slow_echo(text: str) -> str:
        """Echo, slowly: a run must live 2 s before it may continue as new."""
        await asyncio.sleep(0.1)
        return text

    agent = Agent(
        "long", model=ScriptedModel("long", script), tools=[slow_echo, wait_for_it], max_turns=100
    )
    async with serving(dev_env.client, agent, max_cached_workflows=100) as worker:
        client = AgentClient(dev_env.client, worker.task_queue)
        handle = await client.start("long", "go", continue_as_new_at_bytes=60_000)
        await wait_pending(client, handle.id)
        # Sent while the call waits, around continue-as-new boundaries: each applies once.
        await handle.signal("user_message", {"content": "first note"})
        await handle.signal("tool_result", {"tool_call_id": "ext", "content": "arrived"})
        await handle.signal("tool_result", {"tool_call_id": "ext", "content": "duplicate"})
        await handle.signal("user_message", {"content": "second note"})
        result = await handle.result()
        description = await client.handle(handle.id).describe()
        events = await client.history(handle.id, ["agent"])
    assert result.final_text == "finished"
    assert result.turns == turns + 1
    ids = [m.tool_call_id for m in result.messages if isinstance(m, ToolMessage)]
    assert len(ids) == len(set(ids)) == turns
    notes = [m.content for m in result.messages if isinstance(m, UserMessage)]
    assert notes == ["go", "first note", "second note"]
    [ext] = [m for m in result.messages if isinstance(m, ToolMessage) and m.tool_call_id == "ext"]
    assert ext.content == "arrived"
    assert description.run_id != handle.first_execution_run_id, "the run continued as new"
    kinds = [e.kind for e in events.items if isinstance(e, StatusEvent)]
    assert "continued_as_new" in kinds and "resumed" not in kinds
