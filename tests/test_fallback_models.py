"""Fallback models (issue 19 part 3): `Agent(model=[primary, fallback, ...])` through the real
SDKs, with the local server failing the primary."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, ScriptedModel, telemetry
from durable_agent.storage import data_converter

from .conftest import agent_client, eventually, new_id
from .fake_llm_server import FakeLLMServer, error, text
from .helpers import events
from .processes import free_port
from .test_telemetry import sample, scrape


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_refused_request_is_answered_by_the_fallback_on_another_provider(
    time_env: WorkflowEnvironment, server: FakeLLMServer, stream: bool
) -> None:
    server.reply(error(400, "model not available for this account"), text("Paris."))
    agent = Agent(
        "fallen-back",
        model=["openai:gpt-4.1", "anthropic:claude-opus-4-6"],
        stream=stream,
    )
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("fallen-back", "Capital of France?")
        result = await handle.result()
        history = await client.history(handle.id, ["llm"])
    assert result.final_text == "Paris."
    assert [r.path for r in server.requests] == ["/v1/responses", "/v1/messages"]
    [fallback] = events(history.items, "model_fallback")
    assert fallback["model"] == "openai:gpt-4.1"
    assert fallback["next"] == "anthropic:claude-opus-4-6"
    assert "model not available" in fallback["error"]
    [called] = events(history.items, "model_called")
    assert called["model"] == "claude-opus-4-6"  # the model that answered, with its tokens
    assert result.usage.requests == 1


async def test_a_primary_whose_retries_are_spent_falls_back(
    time_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    server.reply(error(503, "overloaded"), error(503, "overloaded"), text("Lyon is second."))
    agent = Agent(
        "retried-then-fallen-back",
        model=["anthropic:claude-opus-4-6", "openai-chat:gpt-4.1-mini"],
        model_retry=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=1)),
    )
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("retried-then-fallen-back", "Second city?")
        result = await handle.result()
        history = await client.history(handle.id, ["llm"])
    assert result.final_text == "Lyon is second."
    paths = [r.path for r in server.requests]
    assert paths == ["/v1/messages", "/v1/messages", "/v1/chat/completions"]
    [fallback] = events(history.items, "model_fallback")
    assert "overloaded" in fallback["error"]
    assert events(history.items, "model_called")[0]["model"] == "gpt-4.1-mini"


async def test_when_every_model_fails_the_run_fails_as_before(
    time_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    server.reply(error(400, "first refused"), error(400, "second refused"))
    agent = Agent("all-fail", model=["openai:gpt-4.1", "openai-chat:gpt-4.1"])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("all-fail", "Hello?")
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        history = await client.history(handle.id, ["llm"])
    assert "second refused" in str(failure.value.cause)
    assert len(events(history.items, "model_fallback")) == 1


async def test_scripted_fallbacks_are_served_by_the_worker(time_env: WorkflowEnvironment) -> None:
    def broken(request: object) -> str:
        raise ValueError("the primary is down")

    primary = ScriptedModel(new_id(), broken)
    backup = ScriptedModel(new_id(), ["from the backup"])
    agent = Agent(
        "scripted-fallback",
        model=[primary, backup],
        model_retry=RetryPolicy(maximum_attempts=1),
    )
    async with agent_client(time_env.client, agent) as (client, _):
        result = await (await client.start("scripted-fallback", "hi")).result()
    assert result.final_text == "from the backup"


async def test_the_model_calls_metric_labels_the_model_that_answered(
    time_env: WorkflowEnvironment,
) -> None:
    """It labelled the primary, whose call had failed, with the fallback's call and tokens."""
    port = free_port()
    client = await Client.connect(
        time_env.client.service_client.config.target_host,
        namespace=time_env.client.namespace,
        data_converter=data_converter(),
        runtime=telemetry.metrics_runtime(f"127.0.0.1:{port}"),
    )

    def broken(request: object) -> str:
        raise ValueError("the primary is down")

    primary, backup = ScriptedModel(new_id(), broken), ScriptedModel(new_id(), ["backed up"])
    agent = Agent(
        "metered-fallback", model=[primary, backup], model_retry=RetryPolicy(maximum_attempts=1)
    )
    async with agent_client(client, agent) as (agents, worker):
        result = await (await agents.start("metered-fallback", "hi")).result()
        queue = f'task_queue="{worker.task_queue}"'

        async def counted() -> bool:
            return sample(scrape(port), "durable_agent_model_calls", agent=agent.name) == 1

        await eventually(counted, "the model call on the endpoint")
        text = "\n".join(line for line in scrape(port).splitlines() if queue in line)
    assert result.final_text == "backed up"
    calls = "durable_agent_model_calls"
    assert sample(text, calls, model=backup.model_string, fallback="ValueError") == 1
    assert sample(text, calls, model=primary.model_string) == 0
    tokens = sample(text, "durable_agent_tokens", model=backup.model_string, direction="output")
    assert tokens == result.usage.output_tokens > 0


def test_an_empty_list_of_models_is_refused() -> None:
    with pytest.raises(ValueError, match="empty list of models"):
        Agent("none", model=[])
