"""A snapshot taken while a response is partly answered resumes without losing those answers."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    Item,
    RunState,
    ScriptedModel,
    Snapshot,
    StatusEvent,
    Usage,
    UserMessage,
    external_tool,
    prompt_messages,
    tool,
)

from .conftest import agent_client, calls, new_id, tool_messages
from .helpers import wait_pending, wait_state

RAN: list[str] = []


@tool
def take_note(text: str) -> str:
    """Take a note (a side effect that must not happen twice).

    Args:
        text: The note.
    """
    RAN.append(text)
    return f"noted {text}"


@external_tool()
def ask(question: str) -> str:
    """Ask someone.

    Args:
        question: The question.
    """
    raise NotImplementedError


def agent() -> Agent:
    reply = calls(
        ("n1", "take_note", {"text": "once"}),
        ("x1", "ask", {"question": "first?"}),
        ("x2", "ask", {"question": "second?"}),
    )
    return Agent("noter", model=ScriptedModel("noter", [reply, "done"]), tools=[take_note, ask])


async def test_answers_given_before_an_export_survive_the_resume(
    time_env: WorkflowEnvironment,
) -> None:
    """Regression: results of the last response join the conversation only once every call
    has one, and the snapshot used to keep only the calls still waiting, so a resumed run ran
    `take_note` again and waited again for `x1`, which had been answered."""
    RAN.clear()
    async with agent_client(time_env.client, agent()) as (client, _):
        original = await client.start("noter", "go", workflow_id=new_id())
        await wait_pending(client, original.id, ids=["x1", "x2"])
        await client.resolve(original.id, "x1", "yes")
        await wait_pending(client, original.id, ids=["x2"])
        snapshot = await client.snapshot(original.id)
        await original.terminate("exported")
        assert [m.tool_call_id for m in snapshot.answered] == ["n1", "x1"]

        resumed = await client.start(snapshot=snapshot, workflow_id=new_id())
        await wait_pending(client, resumed.id, ids=["x2"], what="the resumed run to wait for x2")
        await client.resolve(resumed.id, "x2", "no")
        result = await resumed.result()
    assert RAN == ["once"], "take_note ran again after the resume"
    answers = {m.tool_call_id: m.content for m in tool_messages(result.messages)}
    assert answers == {"n1": "noted once", "x1": "yes", "x2": "no"}
    assert [m.tool_call_id for m in tool_messages(result.messages)] == ["n1", "x1", "x2"]


def _exported(*, turns: int = 3) -> Snapshot:
    """A run of `turns` model calls (the first by `triage`, then `billing`), exported."""
    items: list[Item] = [
        StatusEvent(source="agent", kind="run_started", data={"agent": "triage"}),
        UserMessage(content="help"),
    ]
    for turn in range(turns):
        agent = "triage" if turn == 0 else "billing"
        tokens = {"input_tokens": 10 * (turn + 1), "output_tokens": 2}
        items.append(StatusEvent(source="llm", kind="model_called", data=tokens))
        items.append(AssistantMessage(content=f"answer {turn}", agent=agent))
        items.append(UserMessage(content=f"more {turn}"))
    usage = Usage(requests=turns, input_tokens=60, output_tokens=2 * turns)
    return Snapshot(agent="billing", items=items, turns=turns, usage=usage)


def test_a_fork_winds_back_agent_turns_and_usage() -> None:
    """Regression: a fork kept the exported run's agent, turns and usage, so a fork of an early
    point of a long run failed at once with MaxTurnsExceeded, or spoke as a later agent."""
    fork = _exported().prefix(2)  # the prompt and triage's first answer
    assert [type(m).__name__ for m in prompt_messages(fork.items)] == [
        "UserMessage",
        "AssistantMessage",
    ]
    assert (fork.agent, fork.turns) == ("triage", 1)
    assert fork.usage == Usage(requests=1, input_tokens=10, output_tokens=2)
    assert _exported().prefix(100) == _exported(), "no cut, nothing wound back"


@pytest.mark.parametrize("conversation", [False, True], ids=["run", "conversation"])
async def test_a_snapshot_that_ends_in_an_answer_is_not_answered_again(
    time_env: WorkflowEnvironment, conversation: bool
) -> None:
    """Regression: resuming a finished run called the model again; now the answer stands, and a
    conversation waits for the next user message."""
    model = ScriptedModel("answerer", ["first answer", "second answer"])
    async with agent_client(time_env.client, Agent("answerer", model=model)) as (client, _):
        finished = await client.start("answerer", "hi")
        await finished.result()
        snapshot = await client.snapshot(finished.id)
        resumed = await client.start(
            snapshot=snapshot, workflow_id=new_id(), conversation=conversation
        )
        if conversation:
            await wait_state(client, resumed.id, RunState.WAITING_FOR_USER)
            await client.say(resumed.id, "and?")
            await wait_state(client, resumed.id, RunState.WAITING_FOR_USER, turn=2)
            await resumed.terminate("test over")
            return
        result = await resumed.result()
    assert (result.final_text, result.turns) == ("first answer", 1)
