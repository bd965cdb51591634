"""Mistakes a model makes, and tools that fail: bad tool arguments, an unknown tool name and
a tool that raises go back to the model as an error it can act on; a model that never gives a
final answer fails the run at `max_turns`."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    RunState,
    ScriptedModel,
    ToolMessage,
    tool,
)

from .conftest import agent_client, calls, new_id, run_error, tool_messages
from .helpers import events, recording
from .tools import RUNS, ask_manager


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


# ---------------------------------------------------------------------------- bad arguments


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
    async with agent_client(time_env.client, agent) as (client, _):
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
    model = ScriptedModel(
        "sloppy-ext",
        [calls(("m1", "ask_manager", '{"question": ["?"]}')), "I will ask properly"],
    )
    agent = Agent("sloppy-ext", model=model, tools=[ask_manager])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("sloppy-ext", "go")
        result = await asyncio.wait_for(handle.result(), 30)
    [message] = tool_messages(result.messages)
    assert message.is_error and "question" in message.content
    assert result.final_text == "I will ask properly"


# ---------------------------------------------------------------------------- unknown tool


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
    async with agent_client(time_env.client, agent) as (client, _):
        result = await (await client.start("typo", "weather?")).result()
    unknown, known = tool_messages(result.messages)
    assert unknown.tool_call_id == "u1" and unknown.is_error
    assert "get_wether" in unknown.content
    assert "available tools: weather, ask_manager" in unknown.content
    assert requests[1].messages[-1] == unknown, "the model saw the error"
    assert (known.content, known.is_error) == ("sunny in Paris", False)
    assert result.final_text == "sunny"


# ---------------------------------------------------------------------------- tool raises


async def test_failing_tool_is_retried_then_reported(time_env: WorkflowEnvironment) -> None:
    model = ScriptedModel("fails", [calls(("f1", "broken", '{"n": 7}')), "the backend is down"])
    agent = Agent("fails", model=model, tools=[broken])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("fails", "go")
        result = await handle.result()
        stream = await client.history(handle.id, ["tool"])
    [message] = tool_messages(result.messages)
    assert message.tool_call_id == "f1" and message.is_error
    assert "broken" in message.content and "the backend is down" in message.content
    assert RUNS["broken"] == ["7", "7"], "maximum_attempts=2: exactly two attempts"
    assert events(stream.items, "tool_failed") == [{"tool": "broken", "tool_call_id": "f1"}]
    assert result.final_text == "the backend is down"


# ---------------------------------------------------------------------------- max_turns


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
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("loops", "go", max_turns=run_limit)
        cause = await run_error(handle)
        status = await client.status(handle.id)
    assert cause.type == "MaxTurnsExceeded" and cause.non_retryable
    assert f"({expected})" in str(cause)
    assert len(requests) == expected
    assert RUNS["weather"] == ["Oslo"] * expected, "every turn's tool call was answered"
    assert (status.state, status.turn) == (RunState.FAILED, expected)
