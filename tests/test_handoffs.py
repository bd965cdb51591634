"""Handoffs: an agent transfers the conversation to another agent or to a person, who answers
with a user message or a tool result."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    RunState,
    ScriptedModel,
    UserMessage,
    person,
)

from .conftest import agent_client, calls, tool_messages
from .helpers import events, recording, wait_pending


async def test_handoff_chain_to_an_agent_then_a_person(time_env: WorkflowEnvironment) -> None:
    a_requests: list[ModelRequest] = []
    b_requests: list[ModelRequest] = []
    agent_b = Agent(
        "B",
        instructions="You are B.",
        model=recording(
            [
                calls(("h2", "transfer_to_billing_team", {"reason": "needs a person"})),
                "B here: billing says the refund is done.",
            ],
            b_requests,
        ),
        handoffs=[person("billing team")],
    )
    agent_a = Agent(
        "A",
        instructions="You are A.",
        model=recording([calls(("h1", "transfer_to_B", {"reason": "billing"}))], a_requests),
        handoffs=[agent_b],
    )
    async with agent_client(time_env.client, agent_a) as (client, _):
        handle = await client.start("A", "I want a refund")
        [pending] = await wait_pending(client, handle.id)
        status = await client.status(handle.id)
        await handle.signal("user_message", {"content": "Refund done.", "name": "billing"})
        result = await handle.result()
        stream = await client.history(handle.id, ["agent"])
    assert (pending.tool_call_id, pending.kind, pending.agent) == ("h2", "handoff", "B")
    assert pending.name == "transfer_to_billing_team"
    assert (status.state, status.agent) == (RunState.WAITING_FOR_USER, "B")
    assert len(a_requests) == 1 and len(b_requests) == 2
    assert a_requests[0].instructions == "You are A."
    assert b_requests[0].instructions == "You are B."
    assert [t.name for t in b_requests[0].tools] == ["transfer_to_billing_team"]
    assert result.agent == "B"
    assistants = [m for m in result.messages if isinstance(m, AssistantMessage)]
    assert [m.agent for m in assistants] == ["A", "B", "B"]
    assert assistants[-1].content == "B here: billing says the refund is done."
    shape = [
        (m.role, getattr(m, "tool_call_id", None) or getattr(m, "name", None))
        for m in result.messages
    ]
    assert shape == [
        ("user", None),
        ("assistant", None),
        ("tool", "h1"),
        ("assistant", None),
        ("tool", "h2"),
        ("user", "billing"),
        ("assistant", None),
    ]
    person_reply = result.messages[5]
    assert isinstance(person_reply, UserMessage) and person_reply.content == "Refund done."
    # B's second request saw the person's reply right after the transfer's result.
    assert [m.role for m in b_requests[1].messages][-2:] == ["tool", "user"]
    handoffs = events(stream.items, "handoff")
    assert {"source_agent": "A", "target": "B", "to": "agent"} in handoffs
    assert {"source_agent": "B", "target": "billing team", "to": "person"} in handoffs


async def test_handoff_to_a_person_can_be_answered_by_a_tool_result(
    time_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel(
        "desk", [calls(("h1", "transfer_to_front_desk", {"reason": "keys"})), "Keys are ready."]
    )
    agent = Agent("desk", model=model, handoffs=[person("front desk")])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("desk", "where are my keys?")
        [pending] = await wait_pending(client, handle.id)
        answer = await client.resolve(handle.id, "h1", "at reception")
        result = await handle.result()
    assert pending.kind == "handoff"
    assert answer.detail == "applied"
    assert [(m.role, getattr(m, "tool_call_id", None) or m.content) for m in result.messages] == [
        ("user", "where are my keys?"),
        ("assistant", None),
        ("tool", "h1"),
        ("assistant", "Keys are ready."),
    ]
    assert tool_messages(result.messages)[0].content == "at reception"
    assert result.agent == "desk"
