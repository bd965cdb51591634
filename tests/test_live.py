"""Live runs: the reply streamed to observers, cursors that resume, steering and cancelling.

The model here is scripted with `chunk_delay`, so it streams word by word like a slow model;
the provider adapters' own streaming is tested against real SDK clients elsewhere
(tests/test_provider_streaming.py).
"""

from __future__ import annotations

import asyncio

from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    LiveEvent,
    ModelRequest,
    RunState,
    ScriptedModel,
    StatusEvent,
    ToolMessage,
    UserMessage,
    tool,
)
from durable_agent.client import AgentClient
from durable_agent.workflows.agent_workflow import MIN_RUN_AGE

from .conftest import agent_client, calls, eventually, new_id
from .helpers import wait_pending, wait_state
from .tools import RUNS

REPLY = "The quick brown fox jumps over the lazy dog and then naps in the sun."


async def collect(client: AgentClient, wf_id: str, after: str | None = None) -> list[LiveEvent]:
    """Every event until the run's `end` (bounded)."""

    async def read() -> list[LiveEvent]:
        return [e async for e in client.events(wf_id, after=after)]

    return await asyncio.wait_for(read(), 60)


def streamed_text(events: list[LiveEvent], turn: int) -> str:
    return "".join(
        e.delta.text
        for e in events
        if e.delta is not None and e.delta.turn == turn and e.delta.kind == "text"
    )


async def test_the_reply_streams_to_observers_then_lands_as_the_message(
    dev_env: WorkflowEnvironment,
) -> None:
    agent = Agent("streamer", model=ScriptedModel(new_id(), [REPLY], chunk_delay=0.05))
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("streamer", "say it slowly")
        events = await collect(client, handle.id)
        result = await handle.result()
    assert result.final_text == REPLY
    # Observers saw the text piece by piece, before the message itself.
    deltas = [e for e in events if e.type == "delta"]
    assert len(deltas) > 3, deltas
    # The last batch may be left out: the message, which holds it, lands at once.
    assert REPLY.startswith(streamed_text(events, 1)) and len(streamed_text(events, 1)) > 20
    final = next(
        i for i, e in enumerate(events) if isinstance(e.item, AssistantMessage) and e.item.content
    )
    assert max(i for i, e in enumerate(events) if e.type == "delta") < final
    assert events[-1].type == "end" and events[-1].state is RunState.COMPLETED
    # The recorded message is the whole reply; deltas are never part of the conversation.
    assert [m.content for m in result.messages if isinstance(m, AssistantMessage)] == [REPLY]


async def test_a_cursor_resumes_exactly_after_its_event(dev_env: WorkflowEnvironment) -> None:
    agent = Agent("resumer", model=ScriptedModel(new_id(), [REPLY], chunk_delay=0.02))
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("resumer", "go")
        everything = await collect(client, handle.id)
        await handle.result()
        # Read again from the start, after the run ended: the deltas are gone (the message
        # holds the text), the rest is the same.
        again = await collect(client, handle.id)
        middle = len(again) // 2
        rest = await collect(client, handle.id, after=again[middle].id)
    assert [e.item for e in again if e.type == "item"] == [
        e.item for e in everything if e.type == "item"
    ]
    assert [e.model_dump() for e in rest[:-1]] == [e.model_dump() for e in again[middle + 1 : -1]]


async def test_cursors_stay_valid_across_continue_as_new(dev_env: WorkflowEnvironment) -> None:
    replies = [f"answer {n} " + "word " * 40 for n in range(4)]
    agent = Agent("long-chat", model=ScriptedModel(new_id(), replies, chunk_delay=0.002))
    async with agent_client(dev_env.client, agent) as (client, _):
        wf = new_id()
        await client.start(
            "long-chat", "one", workflow_id=wf, conversation=True, continue_as_new_at_bytes=1
        )
        seen: list[LiveEvent] = []

        async def watch() -> None:
            async for event in client.events(wf):
                seen.append(event)

        watcher = asyncio.create_task(watch())
        for n, text in enumerate(["two", "three", "four"], start=2):
            await wait_state(client, wf, RunState.WAITING_FOR_USER, turn=n - 1)
            if n == 3:
                await asyncio.sleep(MIN_RUN_AGE.total_seconds())  # old enough to continue as new
            await client.say(wf, text)
        await wait_state(client, wf, RunState.WAITING_FOR_USER, turn=4)
        await eventually(
            lambda: _has(
                seen,
                lambda e: isinstance(e.item, AssistantMessage) and e.item.content == replies[3],
            ),
            "the last answer in the watcher's stream",
        )
        watcher.cancel()
        runs = [
            e.item
            for e in seen
            if isinstance(e.item, StatusEvent) and e.item.kind == "continued_as_new"
        ]
        await client.cancel(wf)
    assert runs, "the run never continued as new"
    answers = [e.item.content for e in seen if isinstance(e.item, AssistantMessage)]
    assert answers == replies  # each once, in order, across the runs
    offsets = [e.delta.offset for e in seen if e.delta is not None]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


async def _has(events: list[LiveEvent], match: object) -> bool:
    return any(match(e) for e in events)  # type: ignore[operator]


@tool
def lookup(city: str) -> str:
    """Look a city up.

    Args:
        city: The city.
    """
    RUNS["lookup"].append(city)
    return f"{city}: sunny"


async def test_interrupt_cuts_the_model_off_and_answers_the_new_message(
    dev_env: WorkflowEnvironment,
) -> None:
    seen: list[ModelRequest] = []
    long_reply = " ".join(f"word{n}" for n in range(400))

    def script(request: ModelRequest) -> str | AssistantMessage:
        seen.append(request)
        if len(seen) == 1:
            return calls(("c1", "lookup", {"city": "Oslo"}))
        if len(seen) == 2:
            return long_reply  # streams for ~20 s: the interrupt cuts it off
        return "Fine, Bergen then."

    model = ScriptedModel(new_id(), script, chunk_delay=0.05)
    agent = Agent("steered", model=model, tools=[lookup])
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("steered", "weather in Oslo?")
        partial: list[LiveEvent] = []

        async def streaming() -> bool:
            partial[:] = await _until_deltas(client, handle.id, 5)
            return True

        await asyncio.wait_for(streaming(), 30)
        outcome = await client.interrupt(handle.id, "Actually, Bergen.")
        await eventually(lambda: _interrupted(client, handle.id), "the interrupted event", 60)
        result = await handle.result()
        history = await client.history(handle.id, ("llm",))
    assert "interrupted" in outcome.detail
    assert result.final_text == "Fine, Bergen then."
    assert RUNS["lookup"] == ["Oslo"]  # the finished tool did not run again
    # The third call sees the tool result and the new message, and no half reply as its own.
    third = seen[2].messages
    assert isinstance(third[-1], UserMessage) and third[-1].content == "Actually, Bergen."
    assert isinstance(third[-2], ToolMessage)
    assert not any(isinstance(m, AssistantMessage) and m.content for m in third)
    interrupted = next(
        i for i in history.items if isinstance(i, StatusEvent) and i.kind == "interrupted"
    )
    # Cut off mid-reply by the interrupt (not left to end by itself): what it had said is
    # short of the whole reply.
    assert long_reply.startswith(interrupted.data["partial"])
    assert len(interrupted.data["partial"]) < len(long_reply)
    assert len(interrupted.data["partial"]) >= len(streamed_text(partial, 2)) > 0


async def _until_deltas(client: AgentClient, wf_id: str, n: int) -> list[LiveEvent]:
    got: list[LiveEvent] = []
    async for event in client.events(wf_id):
        got.append(event)
        if sum(e.type == "delta" and e.delta is not None and e.delta.turn == 2 for e in got) >= n:
            break
    return got


async def _interrupted(client: AgentClient, wf_id: str) -> bool:
    page = await client.history(wf_id, ("llm",))
    return any(isinstance(i, StatusEvent) and i.kind == "interrupted" for i in page.items)


@tool(requires_approval=True)
def wire_money(amount: int) -> str:
    """Send money.

    Args:
        amount: How much.
    """
    return "sent"


async def test_cancel_ends_the_run_cleanly_listing_its_waiting_calls(
    dev_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel(new_id(), [calls(("c1", "wire_money", {"amount": 5}))])
    agent = Agent("payer", model=model, tools=[wire_money])
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("payer", "pay")
        await wait_pending(client, handle.id, 1)
        await client.cancel(handle.id)
        result = await handle.result()
        status = await client.status(handle.id)
        events = await collect(client, handle.id)
    assert result.outcome == "cancelled"
    assert [p.tool_call_id for p in result.pending] == ["c1"]
    assert status.state is RunState.CANCELLED
    assert events[-1].type == "end" and events[-1].state is RunState.CANCELLED


async def test_send_starts_a_thread_then_adds_to_it(dev_env: WorkflowEnvironment) -> None:
    seen: list[ModelRequest] = []

    def script(request: ModelRequest) -> str:
        seen.append(request)
        return f"reply {len(seen)}"

    agent = Agent("threaded", model=ScriptedModel(new_id(), script))
    async with agent_client(dev_env.client, agent) as (client, _):
        thread = new_id()
        first = await client.send("threaded", "hello", thread_id=thread)
        await wait_state(client, thread, RunState.WAITING_FOR_USER, turn=1)
        second = await client.send("threaded", "again", thread_id=thread)
        await wait_state(client, thread, RunState.WAITING_FOR_USER, turn=2)
        history = await client.history(thread)
        await client.cancel(thread)
    assert first.workflow_id == second.workflow_id == thread
    assert first.run_id == second.run_id  # one run: the second message continued it
    users = [m.content for m in history.items if isinstance(m, UserMessage)]
    assert users == ["hello", "again"]
    assert [m.content for m in seen[1].messages if isinstance(m, UserMessage)] == [
        "hello",
        "again",
    ]


async def test_events_end_for_a_run_terminated_while_it_waits(
    dev_env: WorkflowEnvironment,
) -> None:
    """A terminated run never reaches an ended state of its own: observers still finish."""
    model = ScriptedModel(new_id(), [calls(("c1", "wire_money", {"amount": 5}))])
    agent = Agent("terminated", model=model, tools=[wire_money])
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("terminated", "pay")
        await wait_pending(client, handle.id, 1)
        await handle.terminate("operator")
        events = await collect(client, handle.id)
    assert events[-1].type == "end"
    assert events[-1].state is RunState.WAITING_FOR_APPROVAL
