"""Bad input from people and models: every bad signal, update, start input or tool call is
refused or reported, loses nothing and breaks nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    RunState,
    ScriptedModel,
    StatusEvent,
    ToolContext,
    ToolMessage,
    external_tool,
    tool,
)
from durable_agent.client import AgentClient

from .conftest import calls, eventually, new_id, run_error, serving, tool_messages

# ---------------------------------------------------------------------------- helpers


async def wait_pending(client: AgentClient, wf: str, *ids: str) -> None:
    """Wait until exactly the calls `ids` are pending."""

    async def check() -> bool:
        return sorted(p.tool_call_id for p in await client.pending(wf)) == sorted(ids)

    await eventually(check, f"pending calls {ids} in {wf}")


async def ignored_signals(client: AgentClient, wf: str) -> list[dict[str, Any]]:
    page = await client.history(wf, ["agent"])
    return [i.data for i in page.items if isinstance(i, StatusEvent) and i.kind == "signal_ignored"]


async def wait_ignored(client: AgentClient, wf: str, count: int) -> list[dict[str, Any]]:
    """Signals are fire-and-forget: wait until the workflow has recorded `count` refusals."""
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        nonlocal found
        found = await ignored_signals(client, wf)
        return len(found) >= count

    await eventually(check, f"{count} signal_ignored event(s)")
    return found


async def result_unless_stuck(handle: WorkflowHandle[Any, Any], seconds: float = 10.0) -> Any:
    """The run's result, or an AssertionError as soon as a workflow task fails: such a run
    is stuck (the server retries the task for ever), which bad input must never cause."""
    result = asyncio.ensure_future(handle.result())
    try:
        for _ in range(int(seconds / 0.1)):
            done, _ = await asyncio.wait({result}, timeout=0.1)
            if done:
                return result.result()
            async for event in handle.fetch_history_events():
                if event.HasField("workflow_task_failed_event_attributes"):
                    failure = event.workflow_task_failed_event_attributes.failure
                    raise AssertionError(f"a workflow task failed: {failure.message}")
        raise TimeoutError(f"{handle.id} neither finished nor failed a task")
    finally:
        if not result.done():
            result.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await result
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("stuck")


def refusal(error: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> str:
    return str(error.value.cause)


def recording(replies: list[str | AssistantMessage], into: list[ModelRequest]) -> ScriptedModel:
    """A scripted model that keeps every request it gets (full conversation)."""

    def script(request: ModelRequest) -> str | AssistantMessage:
        into.append(request)
        return replies[len(into) - 1]

    return ScriptedModel(f"recording-{new_id()}", script)


# ---------------------------------------------------------------------------- tools

RUNS: dict[str, list[str]] = {"weather": [], "broken": [], "slow": []}
RELEASE: dict[str, asyncio.Event] = {}


@external_tool()
def ask_manager(question: str) -> str:
    """Ask a manager; the answer is signalled in.

    Args:
        question: The question.
    """
    raise AssertionError("an external tool's body never runs")


@tool
def weather(city: str) -> str:
    """Today's weather.

    Args:
        city: City name.
    """
    RUNS["weather"].append(city)
    return f"sunny in {city}"


@tool(retry=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=10)))
def broken(n: int) -> str:
    """Always fails.

    Args:
        n: Anything.
    """
    RUNS["broken"].append(str(n))
    raise RuntimeError("the backend is down")


@tool
async def slow(ctx: ToolContext) -> str:
    """Runs until the test releases it."""
    RUNS["slow"].append(ctx.tool_call_id)
    await asyncio.wait_for(RELEASE["slow"].wait(), 10)
    return "slow done"


@pytest.fixture(autouse=True)
def _fresh_tool_records() -> None:
    for runs in RUNS.values():
        runs.clear()
    RELEASE.clear()


def waiting_agent(name: str, *replies: str | AssistantMessage) -> Agent:
    return Agent(name, model=ScriptedModel(name, list(replies)), tools=[ask_manager])


ASK = '{"question": "?"}'

# ---------------------------------------------------------------------------- 1. unknown id


async def test_unknown_tool_call_id_is_refused_and_loses_nothing(
    time_env: WorkflowEnvironment,
) -> None:
    agent = waiting_agent("unknown-id", calls(("m1", "ask_manager", ASK)), "finished")
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("unknown-id", "go")
        await wait_pending(client, handle.id, "m1")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await client.resolve(handle.id, "m404", "lost?")
        await handle.signal("tool_result", {"tool_call_id": "m405", "content": "lost?"})
        [ignored] = await wait_ignored(client, handle.id, 1)
        await wait_pending(client, handle.id, "m1")  # still waiting, untouched
        await handle.signal("tool_result", {"tool_call_id": "m1", "content": "the answer"})
        result = await handle.result()
    assert "unknown" in refusal(refused) and "m404" in refusal(refused)
    assert ignored["signal"] == "ToolResultSignal"
    assert "unknown" in ignored["reason"] and "m405" in ignored["reason"]
    assert [(m.tool_call_id, m.content) for m in tool_messages(result.messages)] == [
        ("m1", "the answer")
    ]
    assert result.final_text == "finished"


# ---------------------------------------------------------------------------- 2. duplicates


async def test_second_result_for_a_call_is_refused(time_env: WorkflowEnvironment) -> None:
    """Both while the response's other calls still wait and after the response moved on."""
    agent = waiting_agent(
        "dupes",
        calls(("a1", "ask_manager", ASK), ("a2", "ask_manager", ASK)),
        calls(("b1", "ask_manager", ASK)),
        "finished",
    )
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("dupes", "go")
        await wait_pending(client, handle.id, "a1", "a2")
        await client.resolve(handle.id, "a1", "first")
        with pytest.raises(WorkflowUpdateFailedError) as refused_in_flight:
            await client.resolve(handle.id, "a1", "second")
        await handle.signal("tool_result", {"tool_call_id": "a1", "content": "third"})
        await wait_ignored(client, handle.id, 1)
        await client.resolve(handle.id, "a2", "other")
        await wait_pending(client, handle.id, "b1")
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
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("wrong-kind", "go")
        try:
            await wait_pending(client, handle.id, "m1")
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


# ---------------------------------------------------------------------------- 3. malformed


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
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("malformed", "go")
        await wait_pending(client, handle.id, "m1")
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
        await wait_pending(client, handle.id, "m1")
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
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("arity", "go")
        await wait_pending(client, handle.id, "m1")
        await handle.signal(signal, args=args)
        await handle.signal("tool_result", {"tool_call_id": "m1", "content": "fine"})
        result = await result_unless_stuck(handle)
        [ignored] = await ignored_signals(client, handle.id)
    assert ignored["signal"] == shape
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    assert tool_messages(result.messages)[0].content == "fine"


# ---------------------------------------------------------------------------- 4. bad arguments


async def test_bad_tool_arguments_go_back_to_the_model(time_env: WorkflowEnvironment) -> None:
    requests: list[ModelRequest] = []
    model = recording(
        [
            calls(("a1", "weather", '{"city": "Par')),
            calls(("a2", "weather", '{"city": 75}')),
            calls(("a3", "weather", '{"town": "Paris"}')),
            calls(("a4", "weather", '{"city": "Paris"}')),
            "It is sunny in Paris.",
        ],
        requests,
    )
    agent = Agent("sloppy", model=model, tools=[weather])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        result = await (await client.start("sloppy", "weather in Paris?")).result()
    assert len(requests) == 5, "the loop went on after every mistake"
    seen = [r.messages[-1] for r in requests[1:]]
    assert all(isinstance(m, ToolMessage) for m in seen)
    bad_json, wrong_type, unknown_field, good = seen
    assert isinstance(bad_json, ToolMessage) and bad_json.is_error
    assert "not valid JSON" in bad_json.content and "weather" in bad_json.content
    assert isinstance(wrong_type, ToolMessage) and wrong_type.is_error
    assert "city" in wrong_type.content and "string" in wrong_type.content
    assert isinstance(unknown_field, ToolMessage) and unknown_field.is_error
    assert "town" in unknown_field.content
    assert isinstance(good, ToolMessage) and not good.is_error
    assert good.content == "sunny in Paris"
    assert RUNS["weather"] == ["Paris"], "the body ran only for valid arguments"
    assert result.final_text == "It is sunny in Paris."


async def test_bad_arguments_to_an_external_tool_do_not_wait(
    time_env: WorkflowEnvironment,
) -> None:
    agent = waiting_agent(
        "sloppy-ext", calls(("m1", "ask_manager", '{"question": ["?"]}')), "I will ask properly"
    )
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("sloppy-ext", "go")
        result = await asyncio.wait_for(handle.result(), 30)
    [message] = tool_messages(result.messages)
    assert message.is_error and "question" in message.content
    assert result.final_text == "I will ask properly"


# ---------------------------------------------------------------------------- 5. unknown tool


async def test_unknown_tool_name_lists_the_available_tools(time_env: WorkflowEnvironment) -> None:
    requests: list[ModelRequest] = []
    model = recording(
        [
            calls(("u1", "get_wether", '{"city": "Paris"}')),
            calls(("u2", "weather", '{"city": "Paris"}')),
            "sunny",
        ],
        requests,
    )
    agent = Agent("typo", model=model, tools=[weather, ask_manager])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        result = await (await client.start("typo", "weather?")).result()
    unknown, known = tool_messages(result.messages)
    assert unknown.tool_call_id == "u1" and unknown.is_error
    assert "get_wether" in unknown.content
    assert "available tools: weather, ask_manager" in unknown.content
    assert requests[1].messages[-1] == unknown, "the model saw the error"
    assert (known.content, known.is_error) == ("sunny in Paris", False)
    assert result.final_text == "sunny"


# ---------------------------------------------------------------------------- 6. tool raises


async def test_failing_tool_is_retried_then_reported(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("fails", [calls(("f1", "broken", '{"n": 7}')), "the backend is down"])
    agent = Agent("fails", model=model, tools=[broken])
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("fails", "go")
        result = await handle.result()
        stream = await client.history(handle.id, ["tool"])
    [message] = tool_messages(result.messages)
    assert message.tool_call_id == "f1" and message.is_error
    assert "broken" in message.content and "the backend is down" in message.content
    assert RUNS["broken"] == ["7", "7"], "maximum_attempts=2: exactly two attempts"
    failed = [
        e.data for e in stream.items if isinstance(e, StatusEvent) and e.kind == "tool_failed"
    ]
    assert failed == [{"tool": "broken", "tool_call_id": "f1"}]
    assert result.final_text == "the backend is down"


# ---------------------------------------------------------------------------- 7. start input


@pytest.mark.parametrize(
    ("payload", "error_type", "mentions"),
    [
        ({"agent": "nobody", "prompt": "hi"}, "UnknownAgent", "nobody"),
        ({"agent": "x"}, "InvalidInput", "prompt"),
        ("junk", "InvalidInput", "malformed"),
        (None, "InvalidInput", "malformed"),
        ({"agent": "x", "prompt": "hi", "max_turns": 0}, "InvalidInput", "max_turns"),
        ({"agent": "x", "prompt": "hi", "colour": "red"}, "InvalidInput", "colour"),
        (
            {"agent": "x", "messages": [{"role": "wizard", "content": "x"}]},
            "InvalidInput",
            "wizard",
        ),
    ],
)
async def test_bad_start_input_fails_fast(
    time_env: WorkflowEnvironment, payload: object, error_type: str, mentions: str
) -> None:
    agent = Agent("x", model=ScriptedModel("x", ["hi"]))
    async with serving(time_env.client, agent) as worker:
        handle = await time_env.client.start_workflow(
            "AgentWorkflow", payload, id=new_id(), task_queue=worker.task_queue
        )
        cause = await run_error(handle)
    assert cause.type == error_type
    assert cause.non_retryable
    assert mentions in str(cause)


async def test_unknown_agent_names_the_served_agents(time_env: WorkflowEnvironment) -> None:
    agent = Agent("support", model=ScriptedModel("support", ["hi"]))
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("suport", "hi")
        cause = await run_error(handle)
    assert cause.type == "UnknownAgent"
    assert "'suport'" in str(cause) and "support" in str(cause)


@pytest.mark.parametrize("args", [[], [{"agent": "x"}, "extra"]])
async def test_start_with_no_or_too_many_inputs_fails_fast(
    time_env: WorkflowEnvironment, args: list[object]
) -> None:
    """Regression: `run` took exactly one argument, so `temporal workflow start --type
    AgentWorkflow` without `--input` raised TypeError before the input was parsed and failed
    every workflow task instead of failing the run with InvalidInput."""
    agent = Agent("x", model=ScriptedModel("x", ["hi"]))
    async with serving(time_env.client, agent) as worker:
        handle = await time_env.client.start_workflow(
            "AgentWorkflow", args=args, id=new_id(), task_queue=worker.task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await result_unless_stuck(handle)
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "InvalidInput"


# ---------------------------------------------------------------------------- 8. max_turns


def endless(requests: list[ModelRequest]) -> ScriptedModel:
    """A model that never gives a final answer."""

    def script(request: ModelRequest) -> AssistantMessage:
        requests.append(request)
        return calls((f"w{len(requests)}", "weather", json.dumps({"city": "Oslo"})))

    return ScriptedModel(f"endless-{new_id()}", script)


@pytest.mark.parametrize(("agent_limit", "run_limit", "expected"), [(3, None, 3), (50, 2, 2)])
async def test_max_turns_fails_the_run(
    time_env: WorkflowEnvironment, agent_limit: int, run_limit: int | None, expected: int
) -> None:
    requests: list[ModelRequest] = []
    agent = Agent("loops", model=endless(requests), tools=[weather], max_turns=agent_limit)
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("loops", "go", max_turns=run_limit)
        cause = await run_error(handle)
        status = await client.status(handle.id)
    assert cause.type == "MaxTurnsExceeded" and cause.non_retryable
    assert f"({expected})" in str(cause)
    assert len(requests) == expected
    assert RUNS["weather"] == ["Oslo"] * expected, "every turn's tool call was answered"
    assert (status.state, status.turn) == (RunState.FAILED, expected)
