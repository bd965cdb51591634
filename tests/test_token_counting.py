"""Token counts from the providers' counting endpoints, and trimming left to the provider
(issue 19 part 5), through the real SDKs against the local server that refuses over its window.

Near the limit the workflow asks the provider to count the prompt (`model.count_tokens`, an
activity) and plans the window on that count rather than on its estimate. With
`ContextPolicy(server_side=True)` Anthropic and OpenAI Responses calls carry the provider's own
trimming (context editing, `truncation="auto"`) and no summary is made."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ContextPolicy,
    Message,
    ModelRequest,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from durable_agent.activities.providers import TokenCounter
from durable_agent.activities.providers.anthropic_messages import AnthropicProvider
from durable_agent.activities.providers.openai_chat import OpenAIChatProvider
from durable_agent.activities.providers.openai_responses import OpenAIResponsesProvider
from durable_agent.wire import COUNT_ACTIVITY, MODEL_ACTIVITY, SUMMARY_ACTIVITY, ServerContext
from durable_agent.workflows.context import overhead
from durable_agent.workflows.window import Window, limits

from .conftest import WINDOW, agent_client, llm_server
from .fake_llm_server import FakeLLMServer, Request
from .test_context_window import REPLY, Reader, is_summary, paired, reader

PATHS = {"openai": "/v1/responses", "anthropic": "/v1/messages"}


def pages(first: int, count: int, chars: int = 400) -> list[Message]:
    """Tool turns already read: a conversation a run starts from."""
    out: list[Message] = []
    for n in range(first, first + count):
        call = ToolCall(id=f"call_{n}", name="fetch_page", arguments=json.dumps({"page": n}))
        out += [
            AssistantMessage(tool_calls=[call]),
            ToolMessage(tool_call_id=f"call_{n}", name="fetch_page", content="dull " * chars),
        ]
    return out


def near_the_limit(agent: Agent, low: float, high: float) -> list[Message]:
    """A conversation whose estimate (before any usage) lies between `low` and `high` of the
    agent's `compact_at`."""
    assert agent.context is not None
    limit = limits(agent.context, agent.model_string, agent.settings.max_tokens)
    messages: list[Message] = [UserMessage(content="Read the whole report.")]
    while True:
        estimate = Window().estimate_now(agent.context, messages, overhead(agent))
        if estimate >= low * limit.at:
            assert estimate <= high * limit.at, estimate
            return messages
        messages += pages(len(messages) // 2, 1, chars=100)  # ~130 tokens: inside any band


def activities(history: object, name: str) -> int:
    return sum(
        e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == name
        for e in history.events  # type: ignore[attr-defined]
    )


def summaries_carried(history: object) -> list[int]:
    """The id of the summary whose text each model call's input carried (calls that named
    it by id alone, for a worker that had it, are left out)."""
    carried = []
    for e in history.events:  # type: ignore[attr-defined]
        attributes = e.activity_task_scheduled_event_attributes
        if attributes.activity_type.name != MODEL_ACTIVITY:
            continue
        window = json.loads(attributes.input.payloads[0].data).get("window") or {}
        if window.get("summary"):
            carried.append(window["summary_id"])
    return carried


async def finished(handle: WorkflowHandle[object, object]) -> object:
    await handle.result()
    return await handle.fetch_history()


# ---------------------------------------------------------------------- the endpoints


@pytest.mark.parametrize("prefix", ["openai", "anthropic"])
async def test_each_counting_endpoint_counts_what_the_call_would_send(
    window_server: FakeLLMServer, prefix: str
) -> None:
    request = ModelRequest(
        model=f"{prefix}:fake-model",
        instructions="Read the whole report.",
        messages=[UserMessage(content="hello"), *pages(0, 3)],
    )
    provider: TokenCounter = (
        OpenAIResponsesProvider(
            openai.AsyncOpenAI(base_url=window_server.openai_url, max_retries=0)
        )
        if prefix == "openai"
        else AnthropicProvider(
            anthropic.AsyncAnthropic(base_url=window_server.anthropic_url, max_retries=0)
        )
    )
    counted = await provider.count_tokens(request, "fake-model")
    assert window_server.counts and window_server.counts[-1][1] == counted
    assert window_server.requests == []  # a count is not a model call
    # The server counts the same prompt sent as a call the same way.
    window_server.responder = Reader(99)
    await provider.complete(request, "fake-model")  # type: ignore[attr-defined]
    assert window_server.prompt_tokens == [counted]


async def test_a_server_without_a_counting_endpoint_leaves_the_estimate(
    window_server: FakeLLMServer,
) -> None:
    """A compatible server answers 404: no count, no failure. Chat Completions has none."""
    client = openai.AsyncOpenAI(base_url=f"{window_server.url}/elsewhere/v1", max_retries=0)
    request = ModelRequest(model="openai:m", messages=[UserMessage(content="hello")])
    assert await OpenAIResponsesProvider(client).count_tokens(request, "m") is None
    assert not isinstance(OpenAIChatProvider(), TokenCounter)


# ---------------------------------------------------------------------- counted near the limit


@pytest.mark.parametrize("prefix", ["openai", "anthropic"])
async def test_the_window_compacts_on_the_providers_count_not_the_estimate(
    time_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    """The model's tokenizer is sparser than the estimate (0.6 tokens where it sees one): a
    conversation it estimates past `compact_at` fits. Counted, the first call carries it
    whole; on the estimate alone (count_tokens=False) it is summarised first."""
    summaries = {}
    for count in (True, False):
        with llm_server(monkeypatch, context_window=WINDOW, token_scale=0.6) as server:
            agent = reader(prefix, ContextPolicy(window_tokens=WINDOW, count_tokens=count))
            messages = near_the_limit(agent, 1.05, 1.4)
            server.responder = Reader(len(messages) // 2 + 1)
            async with agent_client(time_env.client, agent) as (client, _):
                handle = await client.start("reader", messages=messages)
                history = await finished(handle)
            summaries[count] = activities(history, SUMMARY_ACTIVITY)
            assert server.refused == 0
            if count:
                assert activities(history, COUNT_ACTIVITY) >= 1
                assert server.counts[0][0].startswith(PATHS[prefix])
                first = server.requests[0]
                assert not is_summary(first)
                assert f"call_{len(messages) // 2 - 1}" in json.dumps(first.body)
                assert "call_0" in json.dumps(first.body)  # whole
            else:
                assert server.counts == []
    assert summaries == {True: 0, False: 1}


@pytest.mark.parametrize("prefix", ["openai", "anthropic"])
async def test_a_count_over_the_window_compacts_before_the_provider_would_refuse(
    time_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    """The model's tokenizer is denser (1.6 tokens where the estimate sees one) and no call
    has measured it yet: a conversation estimated just under `compact_at` is over the window.
    The count finds it out and the window compacts first: the provider refuses nothing."""
    with llm_server(monkeypatch, context_window=WINDOW, token_scale=1.6) as server:
        agent = reader(prefix, ContextPolicy(window_tokens=WINDOW))
        messages = near_the_limit(agent, 0.95, 1.0)
        server.responder = Reader(len(messages) // 2 + 3)
        async with agent_client(time_env.client, agent) as (client, _):
            handle = await client.start("reader", messages=messages)
            history = await finished(handle)
    assert server.refused == 0
    assert activities(history, COUNT_ACTIVITY) >= 1
    assert activities(history, SUMMARY_ACTIVITY) >= 1
    assert is_summary(server.requests[0])  # compacted before the first call went out
    assert max(server.prompt_tokens) <= WINDOW - REPLY
    # Counted calls go by the outbox's rule too: a summary's text enters history once.
    carried = summaries_carried(history)
    assert carried and len(carried) == len(set(carried)), carried


async def test_a_local_model_call_is_counted_by_a_local_activity(
    time_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fast mode: the count is a local activity too (its request carries the messages)."""
    with llm_server(monkeypatch, context_window=WINDOW, token_scale=0.6) as server:
        agent = reader("anthropic", ContextPolicy(window_tokens=WINDOW))
        agent.local_model = True
        messages = near_the_limit(agent, 1.05, 1.4)
        server.responder = Reader(len(messages) // 2 + 1)
        async with agent_client(time_env.client, agent) as (client, _):
            history = await finished(await client.start("reader", messages=messages))
    assert server.counts and server.refused == 0
    assert activities(history, SUMMARY_ACTIVITY) == 0  # the count said it fits
    assert activities(history, COUNT_ACTIVITY) == 0  # no regular activity: a local one
    # The local model call records a local-activity marker too: count the count's own.
    counted_locally = [
        e
        for e in history.events  # type: ignore[attr-defined]
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        and COUNT_ACTIVITY.encode()
        in e.marker_recorded_event_attributes.details["data"].SerializeToString()
    ]
    assert counted_locally


async def test_a_count_that_fails_leaves_the_estimate_to_decide(
    time_env: WorkflowEnvironment, window_server: FakeLLMServer
) -> None:
    """The counting endpoint is down: the count activity gives up after its attempts, the
    window is planned on the estimate and the run goes on; the next compaction asks again."""
    window_server.counts_fail = True
    window_server.responder = Reader(30)
    agent = reader("openai", ContextPolicy(window_tokens=WINDOW))
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("reader", "Read the whole report.")
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.final_text == "I read every page."
    assert window_server.refused == 0 and activities(history, SUMMARY_ACTIVITY) >= 1
    assert activities(history, COUNT_ACTIVITY) >= 2  # asked again after a failure
    assert len(window_server.counts) >= 2 * 3  # each count tried three times


async def test_far_from_the_limit_nothing_is_counted(
    time_env: WorkflowEnvironment, window_server: FakeLLMServer
) -> None:
    window_server.responder = Reader(3)
    agent = reader("anthropic", ContextPolicy(window_tokens=WINDOW))
    async with agent_client(time_env.client, agent) as (client, _):
        history = await finished(await client.start("reader", "Read the whole report."))
    assert activities(history, COUNT_ACTIVITY) == 0 and window_server.counts == []


# ---------------------------------------------------------------------- the provider trims


def untrimmed(server: FakeLLMServer, request: Request) -> int:
    return server.tokens(request.path, request.body)


@pytest.mark.parametrize("stream", [False, True], ids=["unstreamed", "streamed"])
@pytest.mark.parametrize("prefix", ["openai", "anthropic"])
async def test_server_side_trimming_carries_the_run_past_the_window_without_summaries(
    time_env: WorkflowEnvironment, window_server: FakeLLMServer, prefix: str, stream: bool
) -> None:
    """Each call carries the whole conversation and asks the provider to trim it: the run
    completes though its later prompts are longer than the window (the provider trimmed them,
    and would have refused them otherwise)."""
    turns = 30
    window_server.responder = Reader(turns)
    agent = reader(prefix, ContextPolicy(window_tokens=WINDOW, server_side=True))
    agent.stream = stream
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("reader", "Read the whole report.")
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.final_text == "I read every page."
    assert len([m for m in result.messages if isinstance(m, ToolMessage)]) == turns
    assert activities(history, SUMMARY_ACTIVITY) == 0
    assert window_server.refused == 0 and window_server.trimmed > 0
    assert max(untrimmed(window_server, r) for r in window_server.requests) > WINDOW
    assert all(paired(r.path, r.body) for r in window_server.requests)
    last = window_server.requests[-1]
    assert f"call_{turns - 1}" in json.dumps(last.body) and "call_0" in json.dumps(last.body)
    if prefix == "openai":
        assert all(r.body["truncation"] == "auto" for r in window_server.requests)
    else:
        assert all(
            r.headers["anthropic-beta"] == "context-management-2025-06-27"
            and r.body["context_management"]["edits"][0]["type"] == "clear_tool_uses_20250919"
            for r in window_server.requests
        )


async def test_chat_completions_has_no_server_side_trimming_and_keeps_the_window(
    time_env: WorkflowEnvironment, window_server: FakeLLMServer
) -> None:
    window_server.responder = Reader(30)
    agent = reader("openai-chat", ContextPolicy(window_tokens=WINDOW, server_side=True))
    async with agent_client(time_env.client, agent) as (client, _):
        history = await finished(await client.start("reader", "Read the whole report."))
    assert activities(history, SUMMARY_ACTIVITY) >= 1
    assert window_server.refused == 0 and window_server.trimmed == 0
    assert max(window_server.prompt_tokens) <= WINDOW - REPLY


async def test_when_the_providers_trimming_is_not_enough_the_window_takes_over(
    time_env: WorkflowEnvironment, window_server: FakeLLMServer
) -> None:
    """Anthropic clears old tool results but keeps the calls: over enough turns the calls
    alone pass the window. Its refusal compacts the window, which then trims for the run."""
    window_server.responder = Reader(80)
    agent = reader("anthropic", ContextPolicy(window_tokens=WINDOW, server_side=True))
    agent.max_turns = 85
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("reader", "Read the whole report.")
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.final_text == "I read every page."
    assert window_server.refused == 1 and window_server.trimmed > 0
    assert activities(history, SUMMARY_ACTIVITY) >= 1
    calls = [r for r in window_server.requests if not is_summary(r)]
    assert "context_management" not in calls[-1].body  # the window trims from the refusal on


def test_server_context_is_part_of_the_wire() -> None:
    trim = ServerContext(trigger_tokens=5_000, keep_tool_uses=3, clear_at_least=2_000)
    request = ModelRequest(model="anthropic:m", messages=[], server_context=trim)
    assert ModelRequest.model_validate_json(request.model_dump_json()) == request
    assert "server_context" not in ModelRequest(model="m", messages=[]).model_dump()
