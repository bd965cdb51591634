"""Prompt caching (issue 19): the share of input tokens read from the provider's cache.

One 50-turn run per provider (a tool call a turn with a 1 KB result, a ~1,700-token system
prompt), through the real SDK clients against the local server the tests use
(`tests/fake_llm_server.py` with `prompt_cache=True`), which reports cache hits as each provider
does: OpenAI caches any prefix of 1,024 tokens or more it saw before under the run's
`prompt_cache_key`, in steps of 128; Anthropic reads back up to a cache mark an earlier call
wrote. A token there is four characters of JSON, so the shares are the mechanism's, not a bill.
Anthropic without cache marks (`ModelSettings(prompt_cache=False)`) is the baseline.

    python -m bench --only prompt-cache
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import anthropic
import openai
from temporalio.client import Client

from durable_agent import Agent, ModelSettings, tool
from durable_agent.activities.providers.anthropic_messages import AnthropicProvider
from durable_agent.activities.providers.openai_chat import OpenAIChatProvider
from durable_agent.activities.providers.openai_responses import OpenAIResponsesProvider
from durable_agent.client import AgentClient
from durable_agent.worker import create_worker
from tests.fake_llm_server import FakeLLMServer, text, tool_calls

RULES = "Answer in one short sentence and cite the tool you used. " * 120


@dataclass(frozen=True)
class CacheShare:
    label: str
    turns: int
    input_tokens: int
    cached_input_tokens: int

    @property
    def share(self) -> float:
        return self.cached_input_tokens / self.input_tokens if self.input_tokens else 0.0


@tool
def lookup(topic: str) -> str:
    """Look a topic up.

    Args:
        topic: What to look up.
    """
    return f"{topic}: " + "a fact worth knowing. " * 48  # ~1 KB


CASES = (
    ("OpenAI Responses", "openai", True),
    ("OpenAI Chat Completions", "openai-chat", True),
    ("Anthropic Messages", "anthropic", True),
    ("Anthropic Messages, prompt_cache=False", "anthropic", False),
)


async def measure(client: Client, turns: int) -> list[CacheShare]:
    results = []
    for label, prefix, cached in CASES:
        with FakeLLMServer(prompt_cache=True) as server:
            oai = openai.AsyncOpenAI(base_url=server.openai_url, api_key="bench", max_retries=0)
            claude = anthropic.AsyncAnthropic(
                base_url=server.anthropic_url, api_key="bench", max_retries=0
            )
            providers = {
                "openai": OpenAIResponsesProvider(oai),
                "openai-chat": OpenAIChatProvider(oai),
                "anthropic": AnthropicProvider(claude),
            }
            name = f"bench-cache-{prefix}"
            agent = Agent(
                name,
                model=f"{prefix}:fake-model",
                instructions=RULES,
                tools=[lookup],
                settings=ModelSettings(prompt_cache=cached),
            )
            calls = [tool_calls((f"c{n}", "lookup", f'{{"topic": "t{n}"}}')) for n in range(turns)]
            server.reply(*calls[: turns - 1], text("done"))
            queue = f"bench-cache-{uuid.uuid4().hex[:8]}"
            async with create_worker(client, [agent], task_queue=queue, providers=providers):
                handle = await AgentClient(client, queue).start(name, "Research fifty topics.")
                usage = (await handle.result()).usage
            await oai.close()
            await claude.close()
        results.append(CacheShare(label, turns, usage.input_tokens, usage.cached_input_tokens))
    return results


def table(results: list[CacheShare]) -> list[str]:
    turns = results[0].turns if results else 0
    rows = [
        "## Prompt cache: cached share of input tokens",
        "",
        f"One {turns}-turn run per provider against the local server, which reports cache hits "
        "as each provider does (bench/prompt_cache.py).",
        "",
        "| provider | input tokens | cached | cached share |",
        "|---|---|---|---|",
    ]
    rows += [
        f"| {r.label} | {r.input_tokens:,} | {r.cached_input_tokens:,} | {r.share:.0%} |"
        for r in results
    ]
    return [*rows, ""]
