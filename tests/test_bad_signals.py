"""Bad signals and updates from people and programs: an unknown or repeated tool call id, a
result or approval for the wrong kind of call, a malformed payload, too few or too many
inputs. Each is refused (updates) or recorded as `signal_ignored` (signals), loses nothing
and never breaks the run."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, AssistantMessage, ScriptedModel, ToolContext, tool

from .conftest import agent_client, calls, tool_messages
from .helpers import ignored_signals, refusal, result_unless_stuck, wait_ignored, wait_pending
from .tools import RELEASE, RUNS, ask_manager, held

ASK = '{"question": "?"}'


def waiting_agent(name: str, *replies: str | AssistantMessage) -> Agent:
    return Agent(name, model=ScriptedModel(name, list(replies)), tools=[ask_manager])


@tool
async def slow(ctx: ToolContext) -> str:
    """Runs until the test releases it."""
    RUNS["slow"].append(ctx.tool_call_id)
    await held("slow")
    return "slow done"


# ---------------------------------------------------------------------------- unknown id


async def test_unknown_tool_call_id_is_refused_and_loses_nothing(
    time_env: WorkflowEnvironment,
) -> None:
    agent = waiting_agent("unknown-id", calls(("m1", "ask_manager", ASK)), "finished")
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("unknown-id", "go")
        await wait_pending(client, handle.id, ids=["m1"])
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await client.resolve(handle.id, "m404", "lost?")
        await handle.signal("tool_result", {"tool_call_id": "m405", "content": "lost?"})
        [ignored] = await wait_ignored(client, handle.id, 1)
        await wait_pending(client, handle.id, ids=["m1"])  # still waiting, untouched
        await handle.signal("tool_result", {"tool_call_id": "m1", "content": "the answer"})
        result = await handle.result()
    assert "unknown" in refusal(refused) and "m404" in refusal(refused)
    assert ignored["signal"] == "ToolResultSignal"
    assert "unknown" in ignored["reason"] and "m405" in ignored["reason"]
    assert [(m.tool_call_id, m.content) for m in tool_messages(result.messages)] == [
        ("m1", "the answer")
    ]
    assert result.final_text == "finished"


# ---------------------------------------------------------------------------- duplicates


async def test_second_result_for_a_call_is_refused(time_env: WorkflowEnvironment) -> None:
    """Both while the response's other calls still wait and after the response moved on."""
    agent = waiting_agent(
        "dupes",
        calls(("a1", "ask_manager", ASK), ("a2", "ask_manager", ASK)),
        calls(("b1", "ask_manager", ASK)),
        "finished",
    )
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("dupes", "go")
        await wait_pending(client, handle.id, ids=["a1", "a2"])
        await client.resolve(handle.id, "a1", "first")
        with pytest.raises(WorkflowUpdateFailedError) as refused_in_flight:
            await client.resolve(handle.id, "a1", "second")
        await handle.signal("tool_result", {"tool_call_id": "a1", "content": "third"})
        await wait_ignored(client, handle.id, 1)
        await client.resolve(handle.id, "a2", "other")
        await wait_pending(client, handle.id, ids=["b1"])
        with pytest.raises(WorkflowUpdateFailedError) as refused_later:
            await client.resolve(handle.id, "a1", "fourth")
        await handle.signal("tool_result", {"tool_call_id": "a1", "content": "fifth"})
        ignored = await wait_ignored(client, handle.id, 2)
        await client.resolve(handle.id, "b1", "last")
        result = await handle.result()
    assert "already has a result" in refusal(refused_in_flight)
    assert "already has a result" in refusal(refused_later)
    assert [i["reason"] for i in ignored] == [
        "tool call a1 already has a result",
        "tool call a1 already has a result",
    ]
    assert [(m.tool_call_id, m.content) for m in tool_messages(result.messages)] == [
        ("a1", "first"),
        ("a2", "other"),
        ("b1", "last"),
    ]
    assert result.final_text == "finished"


async def test_result_or_approval_for_the_wrong_kind_of_call_is_refused(
    time_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel(
        "wrong-kind", [calls(("s1", "slow", "{}"), ("m1", "ask_manager", ASK)), "finished"]
    )
    agent = Agent("wrong-kind", model=model, tools=[slow, ask_manager])
    RELEASE["slow"] = asyncio.Event()
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("wrong-kind", "go")
        try:
            await wait_pending(client, handle.id, ids=["m1"])
            with pytest.raises(WorkflowUpdateFailedError) as not_signalled:
                await client.resolve(handle.id, "s1", "faked")
            with pytest.raises(WorkflowUpdateFailedError) as no_approval:
                await client.decide(handle.id, "m1", True)
            await handle.signal("tool_result", {"tool_call_id": "s1", "content": "faked"})
            await handle.signal("approval", {"tool_call_id": "m1", "approved": False})
            ignored = await wait_ignored(client, handle.id, 2)
        finally:
            RELEASE["slow"].set()
        await client.resolve(handle.id, "m1", "real")
        result = await handle.result()
    assert "does not take a result signal" in refusal(not_signalled)
    assert "not waiting for approval" in refusal(no_approval)
    assert [i["signal"] for i in ignored] == ["ToolResultSignal", "ApprovalSignal"]
    assert [(m.tool_call_id, m.content) for m in tool_messages(result.messages)] == [
        ("s1", "slow done"),
        ("m1", "real"),
    ]


# ---------------------------------------------------------------------------- malformed


async def test_malformed_payloads_are_ignored_or_refused(time_env: WorkflowEnvironment) -> None:
    agent = waiting_agent("malformed", calls(("m1", "ask_manager", ASK)), "finished")
    bad_signals: list[tuple[str, object]] = [
        ("tool_result", {"nope": 1}),
        ("tool_result", "just a string"),
        ("tool_result", None),
        ("tool_result", {"tool_call_id": "m1", "content": "x", "surprise": True}),
        ("approval", {"tool_call_id": "m1"}),
        ("user_message", {"content": 5}),
        ("user_message", ["not", "an", "object"]),
    ]
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("malformed", "go")
        await wait_pending(client, handle.id, ids=["m1"])
        for name, payload in bad_signals:
            await handle.signal(name, payload)
        ignored = await wait_ignored(client, handle.id, len(bad_signals))
        refusals: list[str] = []
        for update, payload in [
            ("submit_tool_result", {"nope": 1}),
            ("submit_tool_result", "just a string"),
            ("submit_tool_result", {"content": "no id"}),
            ("submit_approval", {"approved": "perhaps"}),
            ("submit_user_message", {}),
        ]:
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(update, payload)
            refusals.append(refusal(refused))
        await wait_pending(client, handle.id, ids=["m1"])
        await handle.signal("tool_result", {"tool_call_id": "m1", "content": "fine"})
        result = await handle.result()
    assert [i["signal"] for i in ignored] == [
        "ToolResultSignal",
        "ToolResultSignal",
        "ToolResultSignal",
        "ToolResultSignal",
        "ApprovalSignal",
        "UserMessageSignal",
        "UserMessageSignal",
    ]
    assert all(str(i["reason"]).startswith("malformed ") for i in ignored), ignored
    assert all("malformed" in r for r in refusals), refusals
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    assert tool_messages(result.messages)[0].content == "fine"


@pytest.mark.parametrize(
    ("signal", "args", "shape"),
    [
        ("tool_result", [], "ToolResultSignal"),
        ("tool_result", [{"tool_call_id": "m404", "content": "x"}, "extra"], "ToolResultSignal"),
        ("approval", [], "ApprovalSignal"),
        ("user_message", [], "UserMessageSignal"),
    ],
)
async def test_signal_with_no_or_too_many_inputs_breaks_nothing(
    time_env: WorkflowEnvironment, signal: str, args: list[object], shape: str
) -> None:
    """Regression: handlers took exactly one `payload`, so `temporal workflow signal --name
    tool_result` without `--input` raised TypeError in the handler and failed every workflow
    task: the run was stuck until a code change."""
    agent = waiting_agent("arity", calls(("m1", "ask_manager", ASK)), "finished")
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("arity", "go")
        await wait_pending(client, handle.id, ids=["m1"])
        await handle.signal(signal, args=args)
        await handle.signal("tool_result", {"tool_call_id": "m1", "content": "fine"})
        result = await result_unless_stuck(handle)
        [ignored] = await ignored_signals(client, handle.id)
    assert ignored["signal"] == shape
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    assert tool_messages(result.messages)[0].content == "fine"
