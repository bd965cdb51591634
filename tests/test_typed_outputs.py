"""Typed outputs (issue 19 part 1): `Agent(output_type=...)`, validated in the workflow, asked of
each provider in its own wire format, retried with the error, failed clearly when it never fits."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest
from pydantic import BaseModel
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from typing_extensions import TypedDict

from durable_agent import Agent, ScriptedModel, ToolMessage, UserMessage, tool
from durable_agent._output import Invalid, OutputSpec, Valid
from durable_agent.cli.runs import output_schemas
from durable_agent.workflows.life import MIN_RUN_AGE

from .conftest import agent_client, calls, new_id
from .fake_llm_output import output_schema
from .fake_llm_server import FakeLLMServer, Reply, text, tool_calls
from .helpers import events


class City(BaseModel):
    name: str
    population: int


@dataclass
class Point:
    x: float
    y: float


class Tag(TypedDict):
    label: str


class Weather(BaseModel):
    city: str
    celsius: float
    note: str = ""


GOOD = {"name": "Paris", "population": 2100000}


# ---------------------------------------------------------------------- the spec alone


def test_a_model_is_an_object_schema_in_strict_mode() -> None:
    spec = OutputSpec(City)
    assert not spec.format.wrapped and spec.format.strict
    assert spec.format.json_schema["additionalProperties"] is False
    assert spec.validate(json.dumps(GOOD)) == Valid(GOOD)


def test_a_list_a_union_and_a_scalar_are_wrapped_in_an_object() -> None:
    for output_type in (list[City], City | Point, int, list[Tag]):
        spec = OutputSpec(output_type)
        assert spec.format.wrapped and spec.format.json_schema["type"] == "object"
    assert OutputSpec(list[City]).validate(json.dumps({"output": [GOOD]})) == Valid([GOOD])
    point = OutputSpec(City | Point).validate('{"output": {"x": 1, "y": 2}}')
    assert point == Valid({"x": 1.0, "y": 2.0})


def test_an_optional_field_makes_the_schema_a_hint_not_strict() -> None:
    spec = OutputSpec(Weather)
    assert not spec.format.strict
    assert spec.validate('{"city": "Oslo", "celsius": 3}') == Valid(
        {"city": "Oslo", "celsius": 3.0, "note": ""}
    )


def test_what_does_not_validate_says_why_and_never_raises() -> None:
    spec = OutputSpec(City)
    assert isinstance(spec.validate("Paris, about 2 million"), Invalid)
    bad = spec.validate('{"name": "Paris", "population": "many"}')
    assert isinstance(bad, Invalid) and "population" in bad.error
    assert isinstance(spec.validate(None), Invalid)
    assert spec.validate(f"```json\n{json.dumps(GOOD)}\n```") == Valid(GOOD)


def test_a_type_pydantic_cannot_take_fails_when_the_agent_is_defined() -> None:
    with pytest.raises(Exception, match="object"):
        Agent("bad", model="openai:x", output_type=object())


# ---------------------------------------------------------------------- through the real SDKs


def answer(model: str, value: object) -> Reply:
    """The answer as the model gives it: text, or a call of the forced tool."""
    if model == "anthropic:claude-3-haiku-20240307":
        return tool_calls(("toolu_1", "final_output", json.dumps(value)))
    return text(json.dumps(value))


MODELS = [
    "openai:gpt-4.1",
    "openai-chat:gpt-4.1",
    "anthropic:claude-opus-4-6",
    "anthropic:claude-3-haiku-20240307",
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("model", MODELS)
async def test_a_typed_answer_through_each_provider_after_one_that_does_not_validate(
    time_env: WorkflowEnvironment, server: FakeLLMServer, model: str, stream: bool
) -> None:
    server.reply(
        answer(model, {"name": "Paris", "population": "about two million"}),
        answer(model, GOOD),
    )
    agent = Agent("geo", model=model, output_type=City, stream=stream)
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("geo", "The largest city of France?")
        result = await handle.result()
        city = await client.result(handle.id, output_type=City)
        history = await client.history(handle.id, ["agent"])
    assert result.output == GOOD and city == City(**GOOD)
    assert len(server.requests) == 2
    for sent in server.requests:
        schema = output_schema(sent.path, sent.body)
        assert schema is not None and schema["properties"]["population"] == {
            "title": "Population",
            "type": "integer",
        }, sent.body
    if model.startswith("anthropic:claude-opus"):
        assert "output_config" in server.requests[0].body
    if model.startswith("anthropic:claude-3"):
        assert server.requests[0].body["tool_choice"] == {"type": "tool", "name": "final_output"}
    retry = [m for m in result.messages if isinstance(m, UserMessage)][-1]
    assert "population" in retry.content and "does not match" in retry.content
    assert "does not match" in json.dumps(server.requests[1].body)
    invalid = events(history.items, "output_invalid")
    assert [e["attempt"] for e in invalid] == [1]


async def test_a_list_answer_is_wrapped_on_the_wire_and_unwrapped_in_the_result(
    time_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    server.reply(text(json.dumps({"output": [GOOD, {**GOOD, "name": "Lyon"}]})))
    agent = Agent("cities", model="openai:gpt-4.1", output_type=list[City])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("cities", "Two cities?")
        cities = await client.result(handle.id, output_type=list[City])
    assert [c.name for c in cities] == ["Paris", "Lyon"]
    fmt = server.requests[0].body["text"]["format"]
    assert fmt["strict"] is True and fmt["schema"]["required"] == ["output"]


# ---------------------------------------------------------------------- the loop


async def test_an_answer_that_never_validates_fails_the_run_after_the_retries(
    time_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel(new_id(), ["not json", '{"name": 1}', "still not"])
    agent = Agent("stubborn", model=model, output_type=City, output_retries=2)
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("stubborn", "A city?")
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = await client.status(handle.id)
    cause = failure.value.cause
    assert getattr(cause, "type", None) == "OutputValidationFailed"
    assert "after 2 retries" in str(cause)
    assert status.state == "failed" and status.turn == 3


@tool
async def nap() -> str:
    """Rest long enough that the run is old enough to continue as new at its next turn."""
    await asyncio.sleep(MIN_RUN_AGE.total_seconds() + 0.5)
    return "rested"


async def test_output_retries_count_across_continue_as_new(dev_env: WorkflowEnvironment) -> None:
    """The count of answers that did not validate restarted in each new run, so a run that
    continued as new between them could retry for ever."""
    replies = ["not json", calls(("n1", "nap", "{}")), '{"name": 1}']
    replies += [calls(("n2", "nap", "{}")), "still not", "never asked for"]
    model = ScriptedModel(new_id(), replies)
    agent = Agent("stubborn-long", model=model, tools=[nap], output_type=City, output_retries=2)
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("stubborn-long", "A city?", continue_as_new_at_bytes=1)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        history = await client.history(handle.id, ["agent"])
    cause = failure.value.cause
    assert getattr(cause, "type", None) == "OutputValidationFailed", cause
    assert "after 2 retries" in str(cause)
    assert [e["attempt"] for e in events(history.items, "output_invalid")] == [1, 2, 3]
    assert events(history.items, "continued_as_new"), "the run continued as new in between"


async def test_a_sub_agents_typed_answer_is_its_tool_result_as_json(
    time_env: WorkflowEnvironment,
) -> None:
    geo = Agent("geo", model=ScriptedModel(new_id(), [json.dumps(GOOD)]), output_type=City)
    planner = Agent(
        "planner",
        model=ScriptedModel(new_id(), [calls(("p1", "geo", {"input": "a city"})), "done"]),
        tools=[geo.as_tool()],
    )
    async with agent_client(time_env.client, planner) as (client, _):
        result = await (await client.start("planner", "plan")).result()
    [tool_result] = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert json.loads(tool_result.content) == GOOD
    assert result.output is None  # the planner itself answers in plain text


async def test_a_handoff_targets_output_type_holds_for_the_final_answer(
    time_env: WorkflowEnvironment,
) -> None:
    geo = Agent(
        "geo",
        model=ScriptedModel(
            new_id(), [calls(("h1", "transfer_to_geo", {})), '"Paris"', json.dumps(GOOD)]
        ),
        output_type=City,
    )
    triage = Agent(
        "triage",
        model=ScriptedModel(new_id(), [calls(("h1", "transfer_to_geo", {}))]),
        handoffs=[geo],
    )
    async with agent_client(time_env.client, triage) as (client, _):
        result = await (await client.start("triage", "A city?")).result()
    assert result.agent == "geo" and result.output == GOOD


def test_the_schema_command_publishes_each_agents_output_schema() -> None:
    schemas = output_schemas(["tests.test_typed_outputs:SCHEMA_AGENTS"])
    assert schemas["geo-schema"] == City.model_json_schema()
    assert schemas["plain-schema"] == {"type": "string"}


SCHEMA_AGENTS = [
    Agent("geo-schema", model="openai:gpt-4.1", output_type=City),
    Agent("plain-schema", model="openai:gpt-4.1"),
]
