"""Tool calls answered from outside the run: external tools, whose answer is signalled in, and
long-running tools, whose body starts a job and whose result arrives later; a response that
mixes them with ordinary tools.

All on the time-skipping server: time skips only while a test awaits `handle.result()`, so
tests that query or signal a waiting run skip days explicitly with `time_env.sleep`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    PendingCall,
    RunState,
    ScriptedModel,
    ToolContext,
    long_running_tool,
    tool,
)

from .conftest import agent_client, calls, eventually, tool_messages
from .helpers import events, recording, wait_pending
from .tools import RELEASE, RUNS, ask_manager


@long_running_tool()
async def export_table(table: str, ctx: ToolContext) -> str:
    """Start an export job keyed by the tool call id.

    Args:
        table: Which table.
    """
    RUNS["export"].append(ctx.tool_call_id)
    release = RELEASE.get(ctx.tool_call_id)
    if release is not None:
        await asyncio.wait_for(release.wait(), 10)
    return "queued"


@tool
def lookup(key: str) -> str:
    """Look up a key.

    Args:
        key: The key.
    """
    RUNS["lookup"].append(key)
    return f"value of {key}"


# ---------------------------------------------------------------------------- external tools


async def test_external_tool_waits_days_for_its_signal(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("ext", [calls(("m1", "ask_manager", {"question": "ok?"})), "approved"])
    agent = Agent("ext", model=model, tools=[ask_manager])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("ext", "may I?")
        [pending] = await wait_pending(client, handle.id)
        before = await client.status(handle.id)
        await time_env.sleep(timedelta(days=3))
        after = await client.status(handle.id)
        now = await time_env.get_current_time()
        await handle.signal(
            "tool_result", {"tool_call_id": "m1", "content": "yes, go ahead", "is_error": False}
        )
        result = await handle.result()
    assert pending.tool_call_id == "m1"
    assert pending.name == "ask_manager"
    assert pending.arguments == json.dumps({"question": "ok?"}), "arguments exactly as sent"
    assert pending.kind == "external"
    assert pending.agent == "ext"
    assert pending.deadline is None
    assert pending.since.tzinfo is not None
    assert now - pending.since >= timedelta(days=3), "since is when the wait began"
    for status in (before, after):
        assert status.state is RunState.WAITING_FOR_TOOLS
        assert status.pending == 1
    assert result.final_text == "approved"
    [answer] = tool_messages(result.messages)
    assert answer.tool_call_id == "m1"
    assert answer.name == "ask_manager"
    assert answer.content == "yes, go ahead"
    assert not answer.is_error
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]


async def test_structured_result_reaches_the_model_as_json(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("json", [calls(("m1", "ask_manager", {"question": "limit?"})), "ok"])
    agent = Agent("json", model=model, tools=[ask_manager])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("json", "go")
        await wait_pending(client, handle.id)
        answer = await client.resolve(handle.id, "m1", {"approved": True, "limit": 500})
        result = await handle.result()
    assert answer.accepted and answer.detail == "applied"
    [message] = tool_messages(result.messages)
    assert json.loads(message.content) == {"approved": True, "limit": 500}


# ---------------------------------------------------------------------------- long-running tools


async def test_long_running_tool_starts_once_and_waits_for_its_signal(
    time_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel("lr", [calls(("x1", "export_table", {"table": "users"})), "exported"])
    agent = Agent("lr", model=model, tools=[export_table])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("lr", "export users")
        [pending] = await wait_pending(client, handle.id)
        status = await client.status(handle.id)
        await time_env.sleep(timedelta(hours=5))
        await handle.signal("tool_result", {"tool_call_id": "x1", "content": "rows: 42"})
        result = await handle.result()
        stream = await client.history(handle.id, ["tool"])
    assert RUNS["export"] == ["x1"], "the body ran exactly once, with its tool_call_id"
    assert (pending.tool_call_id, pending.kind) == ("x1", "long_running")
    assert status.state is RunState.WAITING_FOR_TOOLS
    [message] = tool_messages(result.messages)
    assert (message.tool_call_id, message.content, message.is_error) == ("x1", "rows: 42", False)
    assert "queued" not in message.content, "the body's return value is not the result"
    assert events(stream.items, "result_received") == [{"tool_call_id": "x1", "buffered": False}]


async def test_result_signalled_before_the_call_waits_is_buffered(
    time_env: WorkflowEnvironment,
) -> None:
    """A fast consumer may answer while the tool body is still running."""
    model = ScriptedModel("early", [calls(("x1", "export_table", {"table": "t"})), "exported"])
    agent = Agent("early", model=model, tools=[export_table])
    RELEASE["x1"] = asyncio.Event()
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("early", "go")
        seen_pending: list[PendingCall] = []

        async def fast_consumer() -> None:
            async def started() -> bool:
                return RUNS["export"] == ["x1"]

            await eventually(started, "the tool body to start")
            seen_pending.extend(await client.pending(handle.id))
            await handle.signal("tool_result", {"tool_call_id": "x1", "content": "rows: 3"})
            RELEASE["x1"].set()  # the body returns only after the result was signalled

        consumer = asyncio.create_task(fast_consumer())
        result = await asyncio.wait_for(handle.result(), 30)
        await consumer
        stream = await client.history(handle.id, ["tool"])
    assert seen_pending == [], "the call was not pending yet when its result arrived"
    assert RUNS["export"] == ["x1"]
    [message] = tool_messages(result.messages)
    assert (message.tool_call_id, message.content) == ("x1", "rows: 3")
    assert events(stream.items, "result_received") == [{"tool_call_id": "x1", "buffered": True}]
    assert result.final_text == "exported"


# ---------------------------------------------------------------------------- mixed response


async def test_mixed_response_answers_in_call_order(time_env: WorkflowEnvironment) -> None:
    requests: list[ModelRequest] = []
    first = calls(
        ("i1", "lookup", {"key": "a"}),
        ("e1", "ask_manager", {"question": "first?"}),
        ("i2", "lookup", {"key": "b"}),
        ("e2", "ask_manager", {"question": "second?"}),
    )
    model = recording([first, "all four answered"], requests)
    agent = Agent("mixed", model=model, tools=[lookup, ask_manager])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("mixed", "go")
        await wait_pending(client, handle.id, 2)
        await client.resolve(handle.id, "e2", "answer two")
        [still] = await wait_pending(client, handle.id, 1)
        calls_while_one_waits = len(requests)
        await client.resolve(handle.id, "e1", "answer one")
        result = await handle.result()
    assert still.tool_call_id == "e1"
    assert calls_while_one_waits == 1, "no model call while any result is missing"
    assert len(requests) == 2
    second = requests[1].messages
    at = next(i for i, m in enumerate(second) if isinstance(m, AssistantMessage))
    assert [(m.role, getattr(m, "tool_call_id", None), m.content) for m in second[at + 1 :]] == [
        ("tool", "i1", "value of a"),
        ("tool", "e1", "answer one"),
        ("tool", "i2", "value of b"),
        ("tool", "e2", "answer two"),
    ]
    assert sorted(RUNS["lookup"]) == ["a", "b"]
    assert result.final_text == "all four answered"
