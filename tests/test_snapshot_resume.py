"""A snapshot taken while a response is partly answered resumes without losing those answers."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, ScriptedModel, external_tool, tool

from .conftest import agent_client, calls, new_id, tool_messages
from .helpers import wait_pending

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
