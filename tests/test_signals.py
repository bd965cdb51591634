"""Waiting calls on the time-skipping server: days-long waits, deadlines, mixed responses,
handoffs, early results and every kind of bad signal."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    ScriptedModel,
    StatusEvent,
    ToolCall,
    ToolContext,
    ToolMessage,
    external_tool,
    long_running_tool,
    person,
    tool,
)
from durable_agent.client import AgentClient

from .conftest import serving


def calls(*specs: tuple[str, str, dict[str, object]]) -> AssistantMessage:
    return AssistantMessage(
        tool_calls=[ToolCall(id=i, name=n, arguments=json.dumps(a)) for i, n, a in specs]
    )


async def until(check: object, tries: int = 200) -> None:
    for _ in range(tries):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


async def wait_pending(client: AgentClient, wf: str, count: int = 1) -> None:
    async def check() -> bool:
        return len(await client.pending(wf)) == count

    await until(check)


@external_tool()
def ask_manager(question: str) -> str:
    """Ask a manager.

    Args:
        question: The question.
    """
    raise NotImplementedError


@external_tool(deadline=timedelta(days=2))
def ask_slowly(question: str) -> str:
    """Ask someone who may never answer.

    Args:
        question: The question.
    """
    raise NotImplementedError


@external_tool(deadline=timedelta(days=2), fail_on_deadline=True)
def ask_or_fail(question: str) -> str:
    """Ask; no answer fails the run.

    Args:
        question: The question.
    """
    raise NotImplementedError


@tool
def lookup(key: str) -> str:
    """Look up a key.

    Args:
        key: The key.
    """
    return f"value of {key}"


async def test_external_result_after_three_days(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("waits", [calls(("m1", "ask_manager", {"question": "ok?"})), "approved"])
    agent = Agent("waits", model=model, tools=[ask_manager])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("waits", "go")
        await wait_pending(client, handle.id)
        [pending] = await client.pending(handle.id)
        status = await client.status(handle.id)
        await time_env.sleep(timedelta(days=3))
        await handle.signal("tool_result", {"tool_call_id": "m1", "content": "yes"})
        result = await handle.result()
    assert (pending.tool_call_id, pending.name, pending.kind) == ("m1", "ask_manager", "external")
    assert json.loads(pending.arguments) == {"question": "ok?"}
    assert pending.deadline is None
    assert status.state == "waiting_for_tools"
    assert result.final_text == "approved"
    [answer] = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert (answer.tool_call_id, answer.content, answer.is_error) == ("m1", "yes", False)


async def test_deadline_tells_the_model_or_fails_the_run(time_env: WorkflowEnvironment) -> None:
    told = Agent(
        "told",
        model=ScriptedModel("told", [calls(("s1", "ask_slowly", {"question": "?"})), "gave up"]),
        tools=[ask_slowly],
    )
    failing = Agent(
        "failing",
        model=ScriptedModel("failing", [calls(("f1", "ask_or_fail", {"question": "?"})), "x"]),
        tools=[ask_or_fail],
    )
    async with serving(time_env.client, told, failing) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        result = await (await client.start("told", "go")).result()
        [timeout] = [m for m in result.messages if isinstance(m, ToolMessage)]
        assert timeout.is_error and "timed out" in timeout.content
        assert result.final_text == "gave up"
        with pytest.raises(WorkflowFailureError) as failed:
            await (await client.start("failing", "go")).result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "ToolDeadlineExceeded"


async def test_mixed_response_results_in_call_order(time_env: WorkflowEnvironment) -> None:
    requests: list[ModelRequest] = []
    replies = [
        calls(
            ("e1", "ask_manager", {"question": "a"}),
            ("i1", "lookup", {"key": "x"}),
            ("e2", "ask_manager", {"question": "b"}),
            ("i2", "lookup", {"key": "y"}),
        ),
        AssistantMessage(content="done"),
    ]

    def script(request: ModelRequest) -> AssistantMessage:
        requests.append(request)
        return replies[len(requests) - 1]

    agent = Agent("mixed", model=ScriptedModel("mixed", script), tools=[ask_manager, lookup])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("mixed", "go")
        await wait_pending(client, handle.id, 2)
        await client.resolve(handle.id, "e2", "second")
        await client.resolve(handle.id, "e1", "first")
        result = await handle.result()
    assert len(requests) == 2, "the model is called again only when every call has its result"
    after = requests[1].messages[2:]
    assert [(m.tool_call_id, m.content) for m in after if isinstance(m, ToolMessage)] == [
        ("e1", "first"),
        ("i1", "value of x"),
        ("e2", "second"),
        ("i2", "value of y"),
    ]
    assert result.final_text == "done"


async def test_handoff_chain_to_a_person_and_back(time_env: WorkflowEnvironment) -> None:
    billing = Agent(
        "billing",
        instructions="You do billing.",
        model=ScriptedModel(
            "billing",
            [
                "",  # turn 0 belongs to triage
                calls(("h2", "transfer_to_finance_team", {"reason": "refund over limit"})),
                "The finance team approved your refund.",
            ],
        ),
        handoffs=[person("finance team")],
    )
    triage = Agent(
        "triage",
        model=ScriptedModel("triage", [calls(("h1", "transfer_to_billing", {}))]),
        handoffs=[billing],
    )
    async with serving(time_env.client, triage) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("triage", "I want my money back")
        await wait_pending(client, handle.id)
        [pending] = await client.pending(handle.id)
        status = await client.status(handle.id)
        await client.say(handle.id, "Approved, go ahead.", name="finance")
        result = await handle.result()
        events = await client.history(handle.id, ["agent"])
    assert (pending.kind, pending.agent) == ("handoff", "billing")
    assert (status.state, status.agent) == ("waiting_for_user", "billing")
    assert result.agent == "billing"
    assert result.final_text == "The finance team approved your refund."
    shape = [
        (type(m).__name__, getattr(m, "tool_call_id", None) or getattr(m, "name", None))
        for m in result.messages
    ]
    assert shape == [
        ("UserMessage", None),
        ("AssistantMessage", None),
        ("ToolMessage", "h1"),
        ("AssistantMessage", None),
        ("ToolMessage", "h2"),
        ("UserMessage", "finance"),
        ("AssistantMessage", None),
    ]
    handoffs = [e.data for e in events.items if isinstance(e, StatusEvent) and e.kind == "handoff"]
    assert {"source_agent": "triage", "target_agent": "billing"} in handoffs
    assert any(h.get("target") == "finance team" for h in handoffs)


STARTED: list[str] = []


@long_running_tool()
async def export_table(table: str, ctx: ToolContext) -> str:
    """Start an export; a fast consumer may answer before this returns.

    Args:
        table: Which table.
    """
    STARTED.append(ctx.tool_call_id)
    await asyncio.sleep(1.0)
    return "queued"


async def test_result_before_the_call_is_pending_is_buffered(time_env: WorkflowEnvironment) -> None:
    STARTED.clear()
    model = ScriptedModel("early", [calls(("x1", "export_table", {"table": "t"})), "exported"])
    agent = Agent("early", model=model, tools=[export_table])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("early", "go")

        async def started() -> bool:
            return bool(STARTED)

        await until(started)
        answer = await client.resolve(handle.id, "x1", "rows: 3")
        result = await handle.result()
        events = await client.history(handle.id, ["tool"])
    assert answer.detail.startswith("buffered")
    [message] = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert (message.tool_call_id, message.content) == ("x1", "rows: 3")
    received = [
        e.data for e in events.items if isinstance(e, StatusEvent) and e.kind == "result_received"
    ]
    assert received == [{"tool_call_id": "x1", "buffered": True}]
    assert STARTED == ["x1"]


async def test_bad_signals_are_recorded_and_lose_nothing(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("bad", [calls(("m1", "ask_manager", {"question": "?"})), "finished"])
    agent = Agent("bad", model=model, tools=[ask_manager])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("bad", "go")
        await wait_pending(client, handle.id)
        await handle.signal("tool_result", {"tool_call_id": "nope", "content": "x"})
        await handle.signal("tool_result", {"nope": 1})
        await handle.signal("tool_result", "not even an object")
        await handle.signal("approval", {"tool_call_id": "m1", "approved": True})
        for payload, reason in (
            ({"tool_call_id": "nope", "content": "x"}, "unknown tool_call_id nope"),
            ({"content": "no id"}, "malformed ToolResultSignal"),
        ):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update("submit_tool_result", payload)
            assert reason in str(refused.value.cause)
        await handle.signal("tool_result", {"tool_call_id": "m1", "content": "the answer"})
        await handle.signal("tool_result", {"tool_call_id": "m1", "content": "a duplicate"})
        result = await handle.result()
        with pytest.raises(RPCError):  # the run has ended: nothing to update
            await client.resolve(handle.id, "m1", "late")
        events = await client.history(handle.id, ["agent"])
    ignored = [
        e.data for e in events.items if isinstance(e, StatusEvent) and e.kind == "signal_ignored"
    ]
    reasons = " | ".join(str(i["reason"]) for i in ignored)
    assert len(ignored) == 5, reasons
    assert "unknown tool_call_id nope" in reasons
    assert "malformed ToolResultSignal" in reasons
    assert "not waiting for approval" in reasons
    assert "already has a result" in reasons
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == ["the answer"]
    assert result.final_text == "finished"


@tool(retry=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=10)))
def flaky(n: int) -> str:
    """Always fails.

    Args:
        n: Anything.
    """
    FLAKY_CALLS.append(n)
    raise RuntimeError("the backend is down")


FLAKY_CALLS: list[int] = []


async def test_model_mistakes_go_back_to_the_model(time_env: WorkflowEnvironment) -> None:
    FLAKY_CALLS.clear()
    model = ScriptedModel(
        "mistakes",
        [
            AssistantMessage(
                tool_calls=[
                    ToolCall(id="a", name="lookup", arguments='{"key": "x'),
                    ToolCall(id="b", name="lookup", arguments='{"key": 5}'),
                    ToolCall(id="c", name="no_such_tool", arguments="{}"),
                    ToolCall(id="d", name="flaky", arguments='{"n": 1}'),
                ]
            ),
            calls(("e", "lookup", {"key": "x"})),
            "recovered",
        ],
    )
    agent = Agent("mistakes", model=model, tools=[lookup, flaky])
    async with serving(time_env.client, agent) as worker:
        result = await (
            await AgentClient(time_env.client, worker.task_queue).start("mistakes", "go")
        ).result()
    by_id = {m.tool_call_id: m for m in result.messages if isinstance(m, ToolMessage)}
    assert by_id["a"].is_error and "not valid JSON" in by_id["a"].content
    assert by_id["b"].is_error and "key" in by_id["b"].content
    assert by_id["c"].is_error and "available tools: lookup, flaky" in by_id["c"].content
    assert by_id["d"].is_error and "the backend is down" in by_id["d"].content
    assert FLAKY_CALLS == [1, 1], "retried by its policy, then reported"
    assert by_id["e"].content == "value of x" and not by_id["e"].is_error
    assert result.final_text == "recovered"


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({"agent": "nobody", "prompt": "hi"}, "UnknownAgent"),
        ({"agent": "x"}, "InvalidInput"),
        ("junk", "InvalidInput"),
    ],
)
async def test_bad_input_fails_fast_and_clearly(
    time_env: WorkflowEnvironment, payload: object, kind: str
) -> None:
    agent = Agent("x", model=ScriptedModel("x", ["hi"]))
    async with serving(time_env.client, agent) as worker:
        handle = await time_env.client.start_workflow(
            "AgentWorkflow",
            payload,
            id=f"bad-{kind}-{worker.task_queue}",
            task_queue=worker.task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), 30)
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == kind and failed.value.cause.non_retryable


async def test_max_turns(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("loops", lambda r: calls((f"c{len(r.messages)}", "lookup", {"key": "k"})))
    agent = Agent("loops", model=model, tools=[lookup], max_turns=3)
    async with serving(time_env.client, agent) as worker:
        with pytest.raises(WorkflowFailureError) as failed:
            await (
                await AgentClient(time_env.client, worker.task_queue).start("loops", "go")
            ).result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "MaxTurnsExceeded"
