"""Whole runs through each real provider adapter: worker, real SDK client, local wire server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, ToolContext, ToolMessage, tool

from .conftest import agent_client
from .fake_llm_server import FakeLLMServer, error, text, tool_calls


@tool
def weather(city: str, ctx: ToolContext) -> str:
    """Weather in a city.

    Args:
        city: The city.
    """
    ctx.progress("EVENT-ONLY-TEXT")
    return f"sunny in {city}"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as s:
        monkeypatch.setenv("OPENAI_BASE_URL", s.openai_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", s.anthropic_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        yield s


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
