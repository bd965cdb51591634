"""A context window that never overflows (issue 19 part 5), through each real SDK against a
local server that refuses, with the provider's own 400, every prompt over its window."""

from __future__ import annotations

import itertools
import json
import re
import threading
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ContextPolicy,
    ModelSettings,
    ScriptedModel,
    ToolCall,
    ToolMessage,
    tool,
)
from durable_agent.wire import SUMMARY_ACTIVITY, SUMMARY_INSTRUCTIONS

from .conftest import WINDOW, agent_client, run_error
from .fake_llm_server import FakeLLMServer, Reply, Request, text, tool_calls

REPLY = 1_000
TURNS = 60
OUTPUT = 5 * 1024


@tool
def fetch_page(page: int) -> str:
    """Fetch a page of the report.

    Args:
        page: Which page.
    """
    return f"page {page}: " + "lorem ipsum " * (OUTPUT // 12)


def is_summary(request: Request) -> bool:
    return SUMMARY_INSTRUCTIONS[:60] in json.dumps(request.body)


class Reader:
    """A model that reads page after page, then answers; and summarises when asked. The next
    page follows the last call in the request (the window always keeps the last turn), so a
    retried call asks for the same page."""

    def __init__(self, turns: int) -> None:
        self._summaries = itertools.count(1)
        self._turns = turns
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        if is_summary(request):
            with self._lock:
                return text(f"Summary {next(self._summaries)}: the pages read so far are dull.")
        read = [int(n) for n in re.findall(r"call_(\d+)", json.dumps(request.body))]
        page = max(read) + 1 if read else 0
        if page >= self._turns:
            return text("I read every page.")
        return tool_calls((f"call_{page}", "fetch_page", json.dumps({"page": page})))


def paired(path: str, body: dict[str, Any]) -> bool:
    """Every tool call in the request has its result in it, and every result its call."""
    calls: set[str] = set()
    results: set[str] = set()
    if path == "/v1/chat/completions":
        for m in body["messages"]:
            calls |= {c["id"] for c in m.get("tool_calls") or []}
            if m["role"] == "tool":
                results.add(m["tool_call_id"])
    elif path == "/v1/responses":
        for item in body["input"]:
            if item.get("type") == "function_call":
                calls.add(item["call_id"])
            elif item.get("type") == "function_call_output":
                results.add(item["call_id"])
    else:
        for m in body["messages"]:
            for block in m["content"] if isinstance(m["content"], list) else []:
                if block["type"] == "tool_use":
                    calls.add(block["id"])
                elif block["type"] == "tool_result":
                    results.add(block["tool_use_id"])
    return calls == results


def conversation_of(request: Request) -> list[Any]:
    """The request's conversation, without Anthropic's cache marks (they move every call)."""

    def unmarked(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: unmarked(v) for k, v in value.items() if k != "cache_control"}
        if isinstance(value, list):
            return [unmarked(v) for v in value]
        return value

    body = request.body
    return list(unmarked(body.get("messages") or body.get("input") or []))


def reader(prefix: str, context: ContextPolicy | None) -> Agent:
    return Agent(
        "reader",
        model=f"{prefix}:fake-model",
        instructions="Read the report page by page.",
        tools=[fetch_page],
        max_turns=TURNS + 5,
        settings=ModelSettings(max_tokens=REPLY),
        context=context,
    )


@pytest.mark.parametrize("prefix", ["openai", "openai-chat", "anthropic"])
async def test_a_long_run_stays_inside_the_window_with_its_calls_paired(
    time_env: WorkflowEnvironment, window_server: FakeLLMServer, prefix: str
) -> None:
    window_server.responder = Reader(TURNS)
    agent = reader(prefix, ContextPolicy(window_tokens=WINDOW))
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("reader", "Read the whole report.")
        result = await handle.result()
        events = await client.history(handle.id, ["llm"])
        history = await handle.fetch_history()
    assert result.final_text == "I read every page."
    tool_results = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert len(tool_results) == TURNS  # the record keeps everything, whole
    assert all(len(m.content) > OUTPUT - 20 for m in tool_results)
    assert window_server.refused == 0
    assert max(window_server.prompt_tokens) <= WINDOW - REPLY
    assert all(paired(r.path, r.body) for r in window_server.requests if not is_summary(r))
    summaries = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == SUMMARY_ACTIVITY
    ]
    compactions = [e for e in events.items if getattr(e, "kind", None) == "context_compacted"]
    assert len(summaries) >= 3
    assert len(compactions) >= len(summaries)
    assert sum(is_summary(r) for r in window_server.requests) >= len(summaries)
    # Compacted in steps: between compactions each call repeats the previous call's window
    # and adds to its end, so the provider's prompt cache keeps paying.
    calls = [conversation_of(r) for r in window_server.requests if not is_summary(r)]
    grown = sum(b[: len(a)] == a for a, b in itertools.pairwise(calls))
    assert grown >= len(calls) - 1 - len(compactions)
    assert len(compactions) < TURNS / 2


@pytest.mark.parametrize("prefix", ["openai", "openai-chat", "anthropic"])
async def test_without_a_policy_the_run_fails_with_the_providers_refusal(
    time_env: WorkflowEnvironment, window_server: FakeLLMServer, prefix: str
) -> None:
    window_server.responder = Reader(TURNS)
    agent = reader(prefix, None)
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("reader", "Read the whole report.")
        failure = await run_error(handle)
    message = str(failure)
    assert "model call failed" in message
    assert any(
        sign in message
        for sign in ("maximum context length", "exceeds the context window", "prompt is too long")
    ), message
    assert window_server.refused == 1


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "unstreamed"])
@pytest.mark.parametrize("prefix", ["openai", "openai-chat", "anthropic"])
async def test_a_refusal_compacts_the_window_and_the_call_is_made_once_more(
    time_env: WorkflowEnvironment, window_server: FakeLLMServer, prefix: str, stream: bool
) -> None:
    """The policy believes the model's window is twice what the server allows: the server's
    refusal (for a streamed Responses call, an error event inside the stream) is the first it
    hears of it, and the run goes on."""
    window_server.responder = Reader(12)
    agent = reader(prefix, ContextPolicy(window_tokens=2 * WINDOW))
    agent.stream = stream
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("reader", "Read the whole report.")
        result = await handle.result()
    assert result.final_text == "I read every page."
    assert window_server.refused >= 1
    calls = [r for r in window_server.requests if not is_summary(r)]  # summaries never stream
    assert all(r.body.get("stream", False) is stream for r in calls)


@pytest.mark.parametrize("local", [False, True], ids=["activity", "local-activity"])
async def test_a_scripted_model_keeps_its_place_when_its_window_leaves_turns_out(
    time_env: WorkflowEnvironment, local: bool
) -> None:
    """Reply n answers the n-th call, those the window left out counted; the scripted model
    answers its own summary calls. In fast mode the summary call is a local activity too, its
    messages carried in its input (a local activity cannot query its run)."""
    script: list[str | AssistantMessage] = [
        AssistantMessage(
            tool_calls=[ToolCall(id=f"call_{n}", name="fetch_page", arguments=f'{{"page": {n}}}')]
        )
        for n in range(20)
    ]
    agent = Agent(
        "scripted-reader",
        model=ScriptedModel("scripted-reader", [*script, "I read every page."]),
        tools=[fetch_page],
        max_turns=25,
        context=ContextPolicy(window_tokens=4_000, reply_tokens=500, summary_tokens=200),
        local_model=local,
    )
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("scripted-reader", "Read the whole report.")
        result = await handle.result()
        events = await client.history(handle.id, ["llm"])
        history = await handle.fetch_history()
    assert result.final_text == "I read every page."
    results = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in results] == [f"call_{n}" for n in range(20)]
    assert not any(m.is_error for m in results)
    compacted = [e for e in events.items if getattr(e, "kind", None) == "context_compacted"]
    assert compacted and "a summary of" in str(compacted[-1].model_dump())
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert ("core_local_activity" in markers) is local


async def test_the_window_and_its_summary_outlive_continue_as_new(
    dev_env: WorkflowEnvironment, window_server: FakeLLMServer
) -> None:
    """Each new run of the chain restores the window from the last context_compacted event it
    carries: its first call is as short as the last one before it, with the same summary."""
    window_server.responder = Reader(40)
    agent = reader("openai-chat", ContextPolicy(window_tokens=WINDOW))
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start(
            "reader", "Read the whole report.", continue_as_new_at_bytes=120_000
        )
        result = await handle.result()
        runs = [r async for r in dev_env.client.list_workflows(f"WorkflowId = '{handle.id}'")]
        events = await client.history(handle.id, ["agent", "llm"])
    assert result.final_text == "I read every page."
    assert len(runs) >= 3, "the run continued as new"
    kinds = [getattr(e, "kind", None) for e in events.items]
    steps = [e.data for e in events.items if getattr(e, "kind", None) == "context_compacted"]
    assert kinds.count("continued_as_new") >= 2
    assert kinds.index("context_compacted") < kinds.index("continued_as_new")
    # One window across the chain: each step goes on from the one before, in every run.
    ids = [s["summary_id"] for s in steps]
    assert ids[-1] >= 2 and all(b - a in (0, 1) for a, b in itertools.pairwise(ids)), ids
    assert all(b["folded"][0] == a["start"] for a, b in itertools.pairwise(steps) if b["folded"])
    assert window_server.refused == 0
    assert max(window_server.prompt_tokens) <= WINDOW - REPLY
    assert all(paired(r.path, r.body) for r in window_server.requests if not is_summary(r))
