"""Whole runs through each real provider adapter: worker, real SDK client, local wire server."""

from __future__ import annotations

import json

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, ToolContext, ToolMessage, tool

from .conftest import agent_client
from .fake_llm_server import FakeLLMServer, Reply, error, text, tool_calls


@tool
def weather(city: str, ctx: ToolContext) -> str:
    """Weather in a city.

    Args:
        city: The city.
    """
    ctx.progress("EVENT-ONLY-TEXT")
    return f"sunny in {city}"


@pytest.mark.parametrize("prefix", ["openai", "openai-chat", "anthropic"])
async def test_a_run_through_each_provider(
    time_env: WorkflowEnvironment, server: FakeLLMServer, prefix: str
) -> None:
    bad = '{"city": 42}' if prefix == "anthropic" else '{"city": "Par'
    server.reply(
        tool_calls(("call_bad", "weather", bad)),
        error(429, "slow down", {"retry-after": "0"}),
        tool_calls(("call_ok", "weather", '{"city": "Paris"}')),
        text("It is sunny in Paris."),
    )
    agent = Agent("forecaster", model=f"{prefix}:fake-model", tools=[weather])
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("forecaster", "Weather in Paris?")
        result = await handle.result()
        events = await client.history(handle.id, ["tool"])
    assert result.final_text == "It is sunny in Paris."
    results = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert [(m.tool_call_id, m.is_error) for m in results] == [
        ("call_bad", True),
        ("call_ok", False),
    ]
    assert results[1].content == "sunny in Paris"
    assert "EVENT-ONLY-TEXT" in str(events.items), "the progress event is in the stream"
    assert len(server.requests) == 4, "one retried 429, no SDK retries"
    for sent in server.requests:
        body = json.dumps(sent.body)
        assert "EVENT-ONLY-TEXT" not in body and "tool_progress" not in body
    last = json.dumps(server.requests[-1].body)
    assert last.count("call_bad") == 2 and last.count("call_ok") == 2
    assert "invalid arguments" in last or "not valid JSON" in last


@pytest.mark.parametrize("prefix", ["openai", "openai-chat", "anthropic"])
async def test_a_stream_cut_mid_way_is_retried_and_observers_are_told(
    dev_env: WorkflowEnvironment, server: FakeLLMServer, prefix: str
) -> None:
    """The first attempt streams some text and is cut off; the retry streams the whole reply.
    Observers see the first attempt's text, then `superseded`, then the retry's; the recorded
    message is the whole reply, once."""
    reply = "Paris is sunny today, with a light breeze from the west and no rain at all."
    server.reply(
        Reply(text=reply, chunk_delay=0.1, cut_after=8), Reply(text=reply, chunk_delay=0.05)
    )
    agent = Agent("streamer", model=f"{prefix}:fake-model")
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("streamer", "Weather in Paris?")
        events = [e async for e in client.events(handle.id)]
        result = await handle.result()
    assert result.final_text == reply
    assert result.usage.requests == 1  # the cut attempt returned nothing to count
    deltas = [e.delta for e in events if e.delta is not None]
    kinds = [(d.attempt, d.kind) for d in deltas]
    assert (1, "text") in kinds and (2, "superseded") in kinds, kinds
    cut = kinds.index((2, "superseded"))
    assert all(attempt == 1 for attempt, _ in kinds[:cut])
    assert all(attempt == 2 for attempt, _ in kinds[cut:])
    first = "".join(d.text for d in deltas[:cut])
    assert first and reply.startswith(first)
