"""Provider adapters with the real `openai` and `anthropic` clients over HTTP to a local server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import anthropic
import openai
import pytest
from temporalio.exceptions import ApplicationError

from durable_agent import (
    AssistantMessage,
    ModelRequest,
    ModelSettings,
    StatusEvent,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
    prompt_messages,
)
from durable_agent.activities.providers import ModelProvider
from durable_agent.activities.providers.anthropic_messages import AnthropicProvider
from durable_agent.activities.providers.openai_chat import OpenAIChatProvider
from durable_agent.activities.providers.openai_responses import OpenAIResponsesProvider

from .fake_llm_server import FakeLLMServer, error, text, tool_calls


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as s:
        yield s


def openai_client(server: FakeLLMServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.openai_url, api_key="test", max_retries=0)


PROVIDERS: dict[str, Callable[[FakeLLMServer], ModelProvider]] = {
    "responses": lambda s: OpenAIResponsesProvider(openai_client(s)),
    "chat": lambda s: OpenAIChatProvider(openai_client(s)),
    "anthropic": lambda s: AnthropicProvider(
        anthropic.AsyncAnthropic(base_url=s.anthropic_url, api_key="test", max_retries=0)
    ),
}
ENDPOINT = {
    "responses": "/v1/responses",
    "chat": "/v1/chat/completions",
    "anthropic": "/v1/messages",
}

WEATHER = ToolSpec(
    name="weather",
    description="Weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def request(*extra: object, tools: bool = True) -> ModelRequest:
    messages = [UserMessage(content="Weather in Paris and Rome?"), *extra]
    return ModelRequest(
        model="x:fake-model",
        instructions="Be brief.",
        messages=prompt_messages(messages),  # type: ignore[arg-type]
        tools=[WEATHER] if tools else [],
        settings=ModelSettings(temperature=0.2, max_tokens=100),
    )


@pytest.fixture(params=sorted(PROVIDERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_text_answer_and_usage(server: FakeLLMServer, kind: str) -> None:
    server.reply(text("Sunny."))
    response = await PROVIDERS[kind](server).complete(request(), "fake-model")
    assert response.message.content == "Sunny."
    assert response.message.tool_calls == []
    assert (response.usage.requests, response.usage.input_tokens, response.usage.output_tokens) == (
        1,
        11,
        7,
    )
    assert response.model == "fake-model"
    [sent] = server.requests
    assert sent.path == ENDPOINT[kind]
    assert sent.body["model"] == "fake-model"
    assert "Be brief." in str(sent.body)


async def test_parallel_tool_calls_keep_order_and_ids(server: FakeLLMServer, kind: str) -> None:
    server.reply(
        tool_calls(
            ("call_a", "weather", '{"city": "Paris"}'), ("call_b", "weather", '{"city": "Rome"}')
        )
    )
    response = await PROVIDERS[kind](server).complete(request(), "fake-model")
    assert [(c.id, c.name) for c in response.message.tool_calls] == [
        ("call_a", "weather"),
        ("call_b", "weather"),
    ]
    assert [c.arguments.replace(" ", "") for c in response.message.tool_calls] == [
        '{"city":"Paris"}',
        '{"city":"Rome"}',
    ]
    assert "weather" in str(server.requests[0].body["tools"])


async def test_single_tool_call(server: FakeLLMServer, kind: str) -> None:
    server.reply(tool_calls(("only", "weather", '{"city": "Oslo"}')))
    response = await PROVIDERS[kind](server).complete(request(), "fake-model")
    assert [c.id for c in response.message.tool_calls] == ["only"]


async def test_tool_call_ids_go_back_exactly_and_no_event_is_sent(
    server: FakeLLMServer, kind: str
) -> None:
    server.reply(text("Paris is sunny."))
    history = request(
        AssistantMessage(
            tool_calls=[ToolCall(id="call_xyz_1", name="weather", arguments='{"city": "Paris"}')]
        ),
        StatusEvent(source="tool", kind="tool_progress", data={"message": "SECRET-EVENT-TEXT"}),
        ToolMessage(tool_call_id="call_xyz_1", name="weather", content="sunny"),
    )
    await PROVIDERS[kind](server).complete(history, "fake-model")
    body = str(server.requests[0].body)
    assert body.count("call_xyz_1") == 2, "the call and its result, paired by id"
    assert "SECRET-EVENT-TEXT" not in body and "tool_progress" not in body


async def test_429_is_retryable_after_retry_after(server: FakeLLMServer, kind: str) -> None:
    server.reply(error(429, "slow down", {"retry-after": "7"}), text("ok"))
    provider = PROVIDERS[kind](server)
    with pytest.raises(ApplicationError) as caught:
        await provider.complete(request(), "fake-model")
    assert not caught.value.non_retryable
    assert caught.value.next_retry_delay == timedelta(seconds=7)
    assert caught.value.type == "ProviderRateLimited"
    assert len(server.requests) == 1, "the SDK itself did not retry"
    assert (await provider.complete(request(), "fake-model")).message.content == "ok"


async def test_503_is_retryable(server: FakeLLMServer, kind: str) -> None:
    server.reply(error(503, "overloaded"))
    with pytest.raises(ApplicationError) as caught:
        await PROVIDERS[kind](server).complete(request(), "fake-model")
    assert not caught.value.non_retryable
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_not_retried_and_carry_the_message(
    server: FakeLLMServer, kind: str, status: int
) -> None:
    server.reply(error(status, "the model rejected your tools"))
    with pytest.raises(ApplicationError) as caught:
        await PROVIDERS[kind](server).complete(request(), "fake-model")
    assert caught.value.non_retryable
    assert "the model rejected your tools" in str(caught.value)
    assert str(status) in str(caught.value)


async def test_connection_refused_is_retryable(kind: str) -> None:
    with FakeLLMServer() as gone:
        pass  # started and stopped: its port refuses connections now
    with pytest.raises(ApplicationError) as caught:
        await PROVIDERS[kind](gone).complete(request(), "fake-model")
    assert not caught.value.non_retryable


@pytest.mark.parametrize("kind", ["responses", "chat"])
async def test_malformed_arguments_pass_through_unchanged(server: FakeLLMServer, kind: str) -> None:
    server.reply(tool_calls(("bad", "weather", '{"city": "Par')))
    response = await PROVIDERS[kind](server).complete(request(), "fake-model")
    assert response.message.tool_calls[0].arguments == '{"city": "Par'


async def test_clients_from_the_environment(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    server.reply(text("a"), text("b"), text("c"), error(500, "boom"))
    for provider in (OpenAIResponsesProvider(), OpenAIChatProvider(), AnthropicProvider()):
        await provider.complete(request(), "fake-model")
    assert [r.path for r in server.requests] == list(ENDPOINT.values())
    with pytest.raises(ApplicationError):  # another request: a retry would get "b" again
        await OpenAIChatProvider().complete(request(tools=False), "fake-model")
    assert len(server.requests) == 4, "environment-built clients do not retry on their own"
