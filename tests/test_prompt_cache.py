"""Prompt caching: Anthropic cache marks on what stays the same between calls, OpenAI's key per
run, and cached input tokens counted as each provider reports them, through the real SDKs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    ToolCall,
    ToolMessage,
    telemetry,
    tool,
)
from durable_agent.storage import data_converter
from durable_agent.wire import AGENT_TOKENS

from .conftest import agent_client, eventually
from .fake_llm_server import FakeLLMServer, text, tool_calls
from .processes import ROOT, free_port
from .test_provider_streaming import Recorder
from .test_providers import PROVIDERS, request
from .test_telemetry import sample, scrape

EPHEMERAL = {"type": "ephemeral"}
LONG_RULES = "Answer in one short sentence and cite the tool you used. " * 120  # ~1,700 tokens


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(prompt_cache=True) as s:
        yield s


def a_turn_later(**settings: object) -> ModelRequest:
    """A request whose conversation has a tool call and its result: the usual agent turn."""
    req = request(
        AssistantMessage(tool_calls=[ToolCall(id="c1", name="weather", arguments="{}")]),
        ToolMessage(tool_call_id="c1", name="weather", content="sunny"),
    )
    return req.model_copy(
        update={"settings": req.settings.model_copy(update=settings), "cache_key": "run-1"}
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_anthropic_marks_the_tools_the_system_prompt_and_the_conversation(
    server: FakeLLMServer, streamed: bool
) -> None:
    server.reply(text("Sunny."))
    sink = Recorder() if streamed else None
    await PROVIDERS["anthropic"](server).complete(a_turn_later(), "fake-model", sink)
    body = server.requests[0].body
    assert body["tools"][-1]["cache_control"] == EPHEMERAL
    assert body["system"] == [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}]
    last = body["messages"][-1]["content"][-1]
    assert last["type"] == "tool_result" and last["cache_control"] == EPHEMERAL
    assert json.dumps(body).count("cache_control") == 3, "three of the four marks allowed"
    assert "prompt_cache_key" not in body


@pytest.mark.parametrize("kind", ["responses", "chat"])
async def test_openai_calls_carry_the_runs_cache_key(server: FakeLLMServer, kind: str) -> None:
    server.reply(text("Sunny."))
    await PROVIDERS[kind](server).complete(a_turn_later(), "fake-model")
    assert server.requests[0].body["prompt_cache_key"] == "run-1"


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_caching_can_be_turned_off_for_a_server_that_refuses_it(
    server: FakeLLMServer, kind: str
) -> None:
    server.reply(text("Sunny."))
    off = a_turn_later(prompt_cache=False)
    await PROVIDERS[kind](server).complete(off, "fake-model")
    body = json.dumps(server.requests[0].body)
    assert "cache_control" not in body and "prompt_cache_key" not in body


async def test_anthropic_tool_choice_is_sent_whether_or_not_caching_is_on(
    server: FakeLLMServer,
) -> None:
    """Regression: with prompt_cache off, tool_choice and parallel_tool_calls were dropped."""
    for cache in (True, False):
        server.reply(text("Sunny."))
        req = a_turn_later(prompt_cache=cache, tool_choice="required", parallel_tool_calls=False)
        await PROVIDERS["anthropic"](server).complete(req, "fake-model")
        choice = server.requests[-1].body["tool_choice"]
        assert choice == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_cached_tokens_are_read_as_each_provider_reports_them(
    server: FakeLLMServer, kind: str, streamed: bool
) -> None:
    """The second of two calls with the same long prefix reads it from the cache: OpenAI says
    so in `*_tokens_details.cached_tokens`, Anthropic in `cache_read_input_tokens` (with its
    `input_tokens` then counting only what follows the last mark)."""
    server.reply(text("Sunny."), text("Still sunny."))
    provider = PROVIDERS[kind](server)
    long = a_turn_later().model_copy(update={"instructions": LONG_RULES})
    first = await provider.complete(long, "fake-model", Recorder() if streamed else None)
    second = await provider.complete(long, "fake-model", Recorder() if streamed else None)
    assert first.usage.cached_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens > 1024
    assert 1024 <= second.usage.cached_input_tokens <= second.usage.input_tokens
    assert (second.usage + first.usage).cached_input_tokens == second.usage.cached_input_tokens


@tool
def lookup(topic: str) -> str:
    """Look a topic up.

    Args:
        topic: What to look up.
    """
    return f"{topic}: " + "a fact worth knowing. " * 20


@pytest.mark.parametrize("prefix", ["openai", "openai-chat", "anthropic"])
async def test_a_runs_usage_and_metrics_count_cached_tokens(
    time_env: WorkflowEnvironment, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = 6
    port = free_port()
    client = await Client.connect(
        time_env.client.service_client.config.target_host,
        namespace=time_env.client.namespace,
        data_converter=data_converter(),
        runtime=telemetry.metrics_runtime(f"127.0.0.1:{port}"),
    )
    agent = Agent("cached", model=f"{prefix}:fake-model", instructions=LONG_RULES, tools=[lookup])
    with FakeLLMServer(prompt_cache=True) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        server.reply(*[tool_calls((f"c{n}", "lookup", '{"topic": "tides"}')) for n in range(5)])
        server.reply(text("Tides follow the moon."))
        async with agent_client(client, agent) as (agents, _):
            handle = await agents.start("cached", "Tell me about tides.")
            result = await handle.result()
            labels = {"agent": "cached", "model": f"{prefix}:fake-model"}

            async def counted() -> bool:
                found = sample(scrape(port), "durable_agent_model_calls", **labels)
                return found == turns

            await eventually(counted, "the run's model calls on the endpoint")
            metrics = scrape(port)
            listed = (await handle.describe()).typed_search_attributes.get(AGENT_TOKENS)
    usage = result.usage
    keys = {r.body.get("prompt_cache_key") for r in server.requests}
    assert keys == ({None} if prefix == "anthropic" else {handle.id}), "one key a run"
    assert usage.requests == turns
    assert usage.cached_input_tokens > usage.input_tokens / 2, "most of each prompt is cached"
    cached = sample(metrics, "durable_agent_cached_input_tokens", **labels)
    assert cached == usage.cached_input_tokens
    inputs = sample(metrics, "durable_agent_tokens", **labels, direction="input")
    assert inputs == usage.input_tokens
    assert listed == usage.total_tokens, "AgentTokens counts the cached input tokens too"


@pytest.mark.slow  # 30-70 s: a dev server and four 3-turn runs
def test_the_bench_reports_the_cached_share(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "prompt-cache", "--output", output],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=240,
    )
    text = output.read_text()
    assert "## Prompt cache: cached share of input tokens" in text
    assert "| Anthropic Messages, prompt_cache=False |" in text and "| 0% |" in text
    assert "| OpenAI Responses |" in text and "| Anthropic Messages |" in text
