"""The context window (issue 19 part 5): tokens sent per model call as a run grows.

A run of 1,000 turns, each a tool call with a 5 KB result, through the real OpenAI SDK (Chat
Completions) against the tests' local server with a 32k-token window that refuses any prompt
over it with OpenAI's own 400 (`tests/fake_llm_server.py`). With the default context policy the
prompt stays under the window however long the run; without it the prompt grows by every turn's
output, and the run fails with the provider's refusal once it passes the window (measured here
on a server without a limit, for as many turns as the table shows, to see the growth).
Payloads over 256 KiB (the continue-as-new snapshot of a long run) go to local file storage, as
`tests/test_long_conversation.py` does. A third run, of a fifth of the turns, goes through the
Responses API, whose token-counting endpoint the window asks near its limit: it reports how many
calls were counted and how far the workflow's estimate was from each count.

    python -m bench --only context-window
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import openai
from temporalio.client import Client
from temporalio.converter import ExternalStorage

from durable_agent import Agent, ContextPolicy, ModelSettings, tool
from durable_agent.activities.providers import ModelProvider
from durable_agent.activities.providers.openai_chat import OpenAIChatProvider
from durable_agent.activities.providers.openai_responses import OpenAIResponsesProvider
from durable_agent.client import AgentClient
from durable_agent.storage import LocalFileDriver, data_converter
from durable_agent.wire import COUNT_ACTIVITY, SUMMARY_INSTRUCTIONS, CountRequest, TokenCount
from durable_agent.worker import create_worker
from tests.fake_llm_server import FakeLLMServer, Reply, Request, text, tool_calls
from tests.test_context_window import paired

WINDOW = 32_000
REPLY = 1_000
OUTPUT = 5 * 1024
UNLIMITED = 10**9


@dataclass
class WindowRun:
    label: str
    turns: int
    seconds: float
    sent: list[int] = field(default_factory=list)
    """Prompt tokens of each model call (summaries apart), as the server counted them."""
    summaries: int = 0
    refused: int = 0
    unpaired: int = 0
    """Calls carrying a tool call without its result, or a result without its call."""
    outcome: str = "completed"
    counts: list[tuple[int, int]] = field(default_factory=list)
    """Each `model.count_tokens` call: the workflow's estimate and the provider's count."""

    def at(self, turn: int) -> int | None:
        return self.sent[turn - 1] if turn <= len(self.sent) else None


@tool
def fetch_page(page: int) -> str:
    """Fetch a page of the report.

    Args:
        page: Which page.
    """
    return f"page {page}: " + "lorem ipsum " * (OUTPUT // 12)


class Reader:
    """Reads the page after the last one in its window, then answers; summarises when asked."""

    def __init__(self, turns: int) -> None:
        self.turns = turns
        self.summaries = 0

    def __call__(self, request: Request) -> Reply:
        body = json.dumps(request.body)
        if SUMMARY_INSTRUCTIONS[:60] in body:
            self.summaries += 1
            return text(f"Summary {self.summaries}: pages read so far, none of them notable.")
        read = [int(n) for n in re.findall(r"call_(\d+)", body)]
        page = max(read) + 1 if read else 0
        if page >= self.turns:
            return text("I read every page.")
        return tool_calls((f"call_{page}", "fetch_page", json.dumps({"page": page})))


async def run(
    client: Client,
    turns: int,
    policy: ContextPolicy | None,
    label: str,
    prefix: str = "openai-chat",
) -> WindowRun:
    """`prefix` `openai-chat` (Chat Completions, estimates only) or `openai` (Responses, whose
    token-counting endpoint the window asks near its limit)."""
    limit = WINDOW if policy is not None else UNLIMITED
    with FakeLLMServer(context_window=limit) as server, tempfile.TemporaryDirectory() as tmp:
        reader = Reader(turns)
        server.responder = reader
        storage = ExternalStorage(drivers=[LocalFileDriver(Path(tmp))])
        stored = await Client.connect(
            client.service_client.config.target_host, data_converter=data_converter(storage)
        )
        oai = openai.AsyncOpenAI(base_url=server.openai_url, api_key="bench", max_retries=0)
        agent = Agent(
            f"bench-window-{uuid.uuid4().hex[:6]}",
            model=f"{prefix}:fake-model",
            instructions="Read the report page by page.",
            tools=[fetch_page],
            max_turns=turns + 5,
            settings=ModelSettings(max_tokens=REPLY),
            context=policy,
        )
        queue = f"bench-window-{uuid.uuid4().hex[:8]}"
        provider = (
            OpenAIChatProvider(oai) if prefix == "openai-chat" else OpenAIResponsesProvider(oai)
        )
        providers: dict[str, ModelProvider] = {prefix: provider}
        started = time.perf_counter()
        outcome = "completed"
        async with create_worker(stored, [agent], task_queue=queue, providers=providers):
            handle = await AgentClient(stored, queue).start(agent.name, "Read the whole report.")
            try:
                await handle.result()
            except Exception as exc:  # a run that fails is a result
                outcome = f"failed: {str(exc)[:80]}"
            seconds = time.perf_counter() - started
            counts = await counted(stored, handle.id)
        await oai.close()
        requests = list(zip(server.requests, server.prompt_tokens, strict=False))
        calls = [(r, n) for r, n in requests if SUMMARY_INSTRUCTIONS[:60] not in json.dumps(r.body)]
        unpaired = sum(not paired(r.path, r.body) for r, _ in calls)
        return WindowRun(
            label,
            turns,
            seconds,
            [n for _, n in calls],
            reader.summaries,
            server.refused,
            unpaired,
            outcome,
            counts,
        )


async def counted(client: Client, workflow_id: str) -> list[tuple[int, int]]:
    """The estimate and the count of each `model.count_tokens` call, in every run of the
    chain, from their activities' recorded input and result."""
    pairs: list[tuple[int, int]] = []
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(
            workflow_id, run_id=execution.run_id
        ).fetch_history()
        asked: dict[int, int] = {}
        for event in history.events:
            scheduled = event.activity_task_scheduled_event_attributes
            if event.HasField("activity_task_scheduled_event_attributes"):
                if scheduled.activity_type.name == COUNT_ACTIVITY:
                    [request] = await client.data_converter.decode(
                        scheduled.input.payloads, [CountRequest]
                    )
                    asked[event.event_id] = request.estimate
            elif event.HasField("activity_task_completed_event_attributes"):
                done = event.activity_task_completed_event_attributes
                if done.scheduled_event_id in asked:
                    [count] = await client.data_converter.decode(done.result.payloads, [TokenCount])
                    if count.input_tokens is not None:
                        pairs.append((asked[done.scheduled_event_id], count.input_tokens))
    return pairs


async def measure(client: Client, turns: int, unbounded_turns: int) -> list[WindowRun]:
    policy = ContextPolicy(window_tokens=WINDOW)
    return [
        await run(client, turns, policy, "default context policy, 32k window"),
        await run(client, unbounded_turns, None, "context=None (no window)"),
        # A fifth of the turns: the counts repeat with each compaction.
        await run(
            client, max(1, turns // 5), policy, "Responses, counted near the limit", "openai"
        ),
    ]


def table(results: list[WindowRun]) -> list[str]:
    longest = max(r.turns for r in results)
    marks = [t for t in (1, 10, 25, 50, 100, 250, 500, 750, 1000) if t <= longest]
    rows = [
        "## Context window: prompt tokens sent per model call as the run grows",
        "",
        f"A tool call a turn with a {OUTPUT // 1024} KB result, Chat Completions through the real "
        f"SDK against the local server, {WINDOW:,}-token window, {REPLY:,} kept for the reply "
        "(bench/context_window.py). Without a policy a real provider refuses the call once the "
        "prompt passes the window; the server here has no limit for that run, to show the growth.",
        "",
        "| run | " + " | ".join(f"turn {t}" for t in marks) + " | max | summaries | refused "
        "| unpaired | time | outcome |",
        "|---|" + "---|" * (len(marks) + 6),
    ]
    for r in results:
        cells = [f"{r.at(t):,}" if r.at(t) is not None else "" for t in marks]
        rows.append(
            f"| {r.label} | "
            + " | ".join(cells)
            + f" | {max(r.sent, default=0):,} | {r.summaries} | {r.refused} | {r.unpaired} "
            f"| {r.seconds:.0f} s | {r.outcome} |"
        )
    for r in results:
        if r.counts:
            errors = sorted(abs(e - c) / c for e, c in r.counts)
            rows += [
                "",
                f"{r.label}: {len(r.counts)} token counts over {len(r.sent)} calls "
                f"({len(r.counts) / max(1, len(r.sent)):.0%}); the workflow's estimate against "
                f"the provider's count: median error {errors[len(errors) // 2]:.1%}, "
                f"largest {errors[-1]:.1%} (estimated {r.counts[0][0]:,} / counted "
                f"{r.counts[0][1]:,} at the first count).",
            ]
    return [*rows, ""]
