"""User messages: a conversation run waits (for days, if need be) for the next one, and one
that arrives while tools run waits for all their results before the model sees it.

Time skips on the time-skipping server only while a test awaits `handle.result()`, so a test
that idles a conversation skips a day explicitly with `time_env.sleep`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    ModelRequest,
    RunState,
    ScriptedModel,
    ToolContext,
    UserMessage,
    prompt_messages,
    tool,
)

from .conftest import agent_client, calls, eventually
from .helpers import recording, wait_state
from .tools import RELEASE, RUNS, held


@tool
async def slow_step(step: int, ctx: ToolContext) -> str:
    """A step that runs until the test releases it.

    Args:
        step: Which step.
    """
    RUNS["step"].append(ctx.tool_call_id)
    await held("steps")
    return f"step {step} done"


async def test_conversation_waits_for_the_next_user_message(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("chat", ["Hello! How can I help?", "Paris is the capital."])
    agent = Agent("chat", model=model)
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("chat", "hi", conversation=True)
        try:
            await wait_state(client, handle.id, RunState.WAITING_FOR_USER, turn=1)
            first = await client.history(handle.id)
            await time_env.sleep(timedelta(days=1))  # a conversation may idle for days
            said = await client.say(handle.id, "What is the capital of France?", name="ann")
            await wait_state(client, handle.id, RunState.WAITING_FOR_USER, turn=2)
            second = await client.history(handle.id)
            described = await handle.describe()
        finally:
            await handle.terminate("test over")
    assert [(m.role, m.content) for m in prompt_messages(first.items)] == [
        ("user", "hi"),
        ("assistant", "Hello! How can I help?"),
    ]
    assert not first.done
    assert said.accepted
    assert [(m.role, m.content) for m in prompt_messages(second.items)] == [
        ("user", "hi"),
        ("assistant", "Hello! How can I help?"),
        ("user", "What is the capital of France?"),
        ("assistant", "Paris is the capital."),
    ]
    assert described.status is not None and described.status.name == "RUNNING"


async def test_user_message_during_tools_waits_for_all_their_results(
    time_env: WorkflowEnvironment,
) -> None:
    requests: list[ModelRequest] = []
    first = calls(("s1", "slow_step", {"step": 1}), ("s2", "slow_step", {"step": 2}))
    model = recording([first, "noted"], requests)
    agent = Agent("busy", model=model, tools=[slow_step])
    RELEASE["steps"] = asyncio.Event()
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("busy", "run both steps")
        try:

            async def both_running() -> bool:
                return sorted(RUNS["step"]) == ["s1", "s2"]

            await eventually(both_running, "both tool bodies to start")
            await handle.signal("user_message", {"content": "by the way, hurry"})
            status = await client.status(handle.id)
        finally:
            RELEASE["steps"].set()
        result = await asyncio.wait_for(handle.result(), 30)
    assert status.state is RunState.RUNNING
    roles = [(m.role, getattr(m, "tool_call_id", None) or m.content) for m in result.messages]
    assert roles == [
        ("user", "run both steps"),
        ("assistant", None),
        ("tool", "s1"),
        ("tool", "s2"),
        ("user", "by the way, hurry"),
        ("assistant", "noted"),
    ]
    assert len(requests) == 2
    assert requests[1].messages[-1] == UserMessage(content="by the way, hurry")


async def test_a_message_sent_again_with_its_update_id_appears_once(
    time_env: WorkflowEnvironment,
) -> None:
    """Regression (found by `make faults`): an update that failed at the RPC level may still
    have been applied, so a caller that sends the message again must not add it twice. The
    same update id makes the second send answer with the first outcome."""
    model = ScriptedModel("once", ["Hello.", "Noted.", "Bye."])
    async with agent_client(time_env.client, Agent("once", model=model)) as (client, _):
        handle = await client.start("once", "hi", conversation=True)
        try:
            await wait_state(client, handle.id, RunState.WAITING_FOR_USER, turn=1)
            first = await client.say(handle.id, "remember this", update_id="msg-1")
            again = await client.say(handle.id, "remember this", update_id="msg-1")
            await wait_state(client, handle.id, RunState.WAITING_FOR_USER, turn=2)
            page = await client.history(handle.id)
        finally:
            await handle.terminate("test over")
    assert first == again
    said = [m.content for m in prompt_messages(page.items) if isinstance(m, UserMessage)]
    assert said == ["hi", "remember this"]
