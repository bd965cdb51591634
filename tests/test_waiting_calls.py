"""Tool calls that wait for the outside world: external and long-running tools, deadlines,
approvals, handoffs to people, conversations, and messages that arrive while tools run.

All on the time-skipping server: time skips only while a test awaits `handle.result()`, so
tests that query or signal a waiting run skip days explicitly with `time_env.sleep`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    PendingCall,
    RunState,
    ScriptedModel,
    StatusEvent,
    ToolContext,
    UserMessage,
    external_tool,
    long_running_tool,
    person,
    prompt_messages,
    tool,
)
from durable_agent.client import AgentClient

from .conftest import calls, eventually, new_id, run_error, serving, tool_messages

# ---------------------------------------------------------------------------- helpers


async def pending_calls(client: AgentClient, wf: str, count: int = 1) -> list[PendingCall]:
    """Wait until exactly `count` calls are pending and return them."""
    found: list[PendingCall] = []

    async def check() -> bool:
        nonlocal found
        found = await client.pending(wf)
        return len(found) == count

    await eventually(check, f"{count} pending call(s) in {wf}")
    return found


def events(items: Sequence[object], kind: str) -> list[dict[str, object]]:
    return [i.data for i in items if isinstance(i, StatusEvent) and i.kind == kind]


def recording(replies: list[str | AssistantMessage], into: list[ModelRequest]) -> ScriptedModel:
    """A scripted model that keeps every request it gets (full conversation)."""

    def script(request: ModelRequest) -> str | AssistantMessage:
        into.append(request)
        return replies[len(into) - 1]

    return ScriptedModel(f"recording-{new_id()}", script)


# ---------------------------------------------------------------------------- tools

TOOL_RUNS: dict[str, list[str]] = {"export": [], "refund": [], "lookup": [], "step": []}
RELEASE: dict[str, asyncio.Event] = {}
"""Events a test sets to let a waiting tool body finish (same event loop as the worker)."""


@external_tool()
def ask_manager(question: str) -> str:
    """Ask a manager; the answer is signalled in.

    Args:
        question: The question.
    """
    raise AssertionError("an external tool's body never runs")


@external_tool(deadline=timedelta(days=2))
def ask_slowly(question: str) -> str:
    """Ask someone who may never answer.

    Args:
        question: The question.
    """
    raise AssertionError("an external tool's body never runs")


@external_tool(deadline=timedelta(days=2), fail_on_deadline=True)
def ask_or_fail(question: str) -> str:
    """Ask; no answer within two days fails the run.

    Args:
        question: The question.
    """
    raise AssertionError("an external tool's body never runs")


@long_running_tool()
async def export_table(table: str, ctx: ToolContext) -> str:
    """Start an export job keyed by the tool call id.

    Args:
        table: Which table.
    """
    TOOL_RUNS["export"].append(ctx.tool_call_id)
    release = RELEASE.get(ctx.tool_call_id)
    if release is not None:
        await asyncio.wait_for(release.wait(), 10)
    return "queued"


@tool(requires_approval=True)
def refund(amount: int) -> str:
    """Refund money to the customer.

    Args:
        amount: Euros.
    """
    TOOL_RUNS["refund"].append(str(amount))
    return f"refunded {amount} EUR"


@tool
def lookup(key: str) -> str:
    """Look up a key.

    Args:
        key: The key.
    """
    TOOL_RUNS["lookup"].append(key)
    return f"value of {key}"


@tool
async def slow_step(step: int, ctx: ToolContext) -> str:
    """A step that runs until the test releases it.

    Args:
        step: Which step.
    """
    TOOL_RUNS["step"].append(ctx.tool_call_id)
    await asyncio.wait_for(RELEASE["steps"].wait(), 10)
    return f"step {step} done"


@pytest.fixture(autouse=True)
def _fresh_tool_records() -> None:
    for runs in TOOL_RUNS.values():
        runs.clear()
    RELEASE.clear()


# ---------------------------------------------------------------------------- 1. external


async def test_external_tool_waits_days_for_its_signal(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("ext", [calls(("m1", "ask_manager", {"question": "ok?"})), "approved"])
    agent = Agent("ext", model=model, tools=[ask_manager])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("ext", "may I?")
        [pending] = await pending_calls(client, handle.id)
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
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("json", "go")
        await pending_calls(client, handle.id)
        answer = await client.resolve(handle.id, "m1", {"approved": True, "limit": 500})
        result = await handle.result()
    assert answer.accepted and answer.detail == "applied"
    [message] = tool_messages(result.messages)
    assert json.loads(message.content) == {"approved": True, "limit": 500}


# ---------------------------------------------------------------------------- 2. deadlines


async def test_deadline_tells_the_model_the_call_timed_out(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("slow", [calls(("s1", "ask_slowly", {"question": "?"})), "gave up"])
    agent = Agent("slow", model=model, tools=[ask_slowly])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("slow", "go")
        [pending] = await pending_calls(client, handle.id)
        result = await handle.result()  # time skips past the two-day deadline
        stream = await client.history(handle.id, ["tool"])
    assert pending.deadline is not None
    assert pending.deadline - pending.since == timedelta(days=2)
    [timeout] = tool_messages(result.messages)
    assert timeout.tool_call_id == "s1"
    assert timeout.is_error
    assert "timed out" in timeout.content
    assert result.final_text == "gave up"
    assert events(stream.items, "deadline_passed") == [{"tool": "ask_slowly", "tool_call_id": "s1"}]


async def test_deadline_with_fail_on_deadline_fails_the_run(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("strict", [calls(("f1", "ask_or_fail", {"question": "?"})), "never"])
    agent = Agent("strict", model=model, tools=[ask_or_fail])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("strict", "go")
        cause = await run_error(handle)
        status = await client.status(handle.id)
    assert cause.type == "ToolDeadlineExceeded"
    assert cause.non_retryable
    assert "f1" in str(cause)
    assert status.state is RunState.FAILED


# ---------------------------------------------------------------------------- 3. long-running


async def test_long_running_tool_starts_once_and_waits_for_its_signal(
    time_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel("lr", [calls(("x1", "export_table", {"table": "users"})), "exported"])
    agent = Agent("lr", model=model, tools=[export_table])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("lr", "export users")
        [pending] = await pending_calls(client, handle.id)
        status = await client.status(handle.id)
        await time_env.sleep(timedelta(hours=5))
        await handle.signal("tool_result", {"tool_call_id": "x1", "content": "rows: 42"})
        result = await handle.result()
        stream = await client.history(handle.id, ["tool"])
    assert TOOL_RUNS["export"] == ["x1"], "the body ran exactly once, with its tool_call_id"
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
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("early", "go")
        seen_pending: list[PendingCall] = []

        async def fast_consumer() -> None:
            async def started() -> bool:
                return TOOL_RUNS["export"] == ["x1"]

            await eventually(started, "the tool body to start")
            seen_pending.extend(await client.pending(handle.id))
            await handle.signal("tool_result", {"tool_call_id": "x1", "content": "rows: 3"})
            RELEASE["x1"].set()  # the body returns only after the result was signalled

        consumer = asyncio.create_task(fast_consumer())
        result = await asyncio.wait_for(handle.result(), 30)
        await consumer
        stream = await client.history(handle.id, ["tool"])
    assert seen_pending == [], "the call was not pending yet when its result arrived"
    assert TOOL_RUNS["export"] == ["x1"]
    [message] = tool_messages(result.messages)
    assert (message.tool_call_id, message.content) == ("x1", "rows: 3")
    assert events(stream.items, "result_received") == [{"tool_call_id": "x1", "buffered": True}]
    assert result.final_text == "exported"


# ---------------------------------------------------------------------------- 4. approvals


async def test_approved_call_runs(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("approve", [calls(("r1", "refund", {"amount": 30})), "refunded"])
    agent = Agent("approve", model=model, tools=[refund])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("approve", "refund me")
        [pending] = await pending_calls(client, handle.id)
        status = await client.status(handle.id)
        ran_before_approval = list(TOOL_RUNS["refund"])
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await client.resolve(handle.id, "r1", "refunded 1000000 EUR")
        decision = await client.decide(handle.id, "r1", True)
        result = await handle.result()
        stream = await client.history(handle.id, ["agent", "tool"])
    assert (pending.tool_call_id, pending.kind) == ("r1", "approval")
    assert status.state is RunState.WAITING_FOR_APPROVAL
    assert ran_before_approval == []
    assert "does not take a result signal" in str(refused.value.cause)
    assert decision.detail == "approved"
    assert TOOL_RUNS["refund"] == ["30"]
    [message] = tool_messages(result.messages)
    assert (message.content, message.is_error) == ("refunded 30 EUR", False)
    assert events(stream.items, "approval_received") == [{"tool_call_id": "r1", "approved": True}]


async def test_rejected_call_never_runs_and_the_model_hears_why(
    time_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel("reject", [calls(("r1", "refund", {"amount": 9000})), "sorry"])
    agent = Agent("reject", model=model, tools=[refund])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("reject", "refund me")
        await pending_calls(client, handle.id)
        status = await client.status(handle.id)
        decision = await client.decide(handle.id, "r1", False, reason="over the refund limit")
        with pytest.raises(WorkflowUpdateFailedError):
            await client.decide(handle.id, "r1", True)  # a decision is final
        result = await handle.result()
    assert status.state is RunState.WAITING_FOR_APPROVAL
    assert decision.detail == "rejected"
    assert TOOL_RUNS["refund"] == [], "a rejected call's activity never runs"
    [message] = tool_messages(result.messages)
    assert message.tool_call_id == "r1"
    assert message.is_error
    assert "over the refund limit" in message.content
    assert result.final_text == "sorry"


# ---------------------------------------------------------------------------- 5. mixed response


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
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("mixed", "go")
        await pending_calls(client, handle.id, 2)
        await client.resolve(handle.id, "e2", "answer two")
        [still] = await pending_calls(client, handle.id, 1)
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
    assert sorted(TOOL_RUNS["lookup"]) == ["a", "b"]
    assert result.final_text == "all four answered"


# ---------------------------------------------------------------------------- 6. handoffs


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
    async with serving(time_env.client, agent_a) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("A", "I want a refund")
        [pending] = await pending_calls(client, handle.id)
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
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("desk", "where are my keys?")
        [pending] = await pending_calls(client, handle.id)
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


# ---------------------------------------------------------------------------- 7. conversations


async def test_conversation_waits_for_the_next_user_message(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("chat", ["Hello! How can I help?", "Paris is the capital."])
    agent = Agent("chat", model=model)
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("chat", "hi", conversation=True)
        try:

            async def answered(turn: int) -> bool:
                status = await client.status(handle.id)
                return status.state is RunState.WAITING_FOR_USER and status.turn == turn

            await eventually(lambda: answered(1), "the first answer")
            first = await client.history(handle.id)
            await time_env.sleep(timedelta(days=1))  # a conversation may idle for days
            said = await client.say(handle.id, "What is the capital of France?", name="ann")
            await eventually(lambda: answered(2), "the second answer")
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


# ---------------------------------------------------------------------------- 8. safe point


async def test_user_message_during_tools_waits_for_all_their_results(
    time_env: WorkflowEnvironment,
) -> None:
    requests: list[ModelRequest] = []
    first = calls(("s1", "slow_step", {"step": 1}), ("s2", "slow_step", {"step": 2}))
    model = recording([first, "noted"], requests)
    agent = Agent("busy", model=model, tools=[slow_step])
    RELEASE["steps"] = asyncio.Event()
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("busy", "run both steps")
        try:

            async def both_running() -> bool:
                return sorted(TOOL_RUNS["step"]) == ["s1", "s2"]

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
