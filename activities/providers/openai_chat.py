"""`openai-chat:<model>`: Chat Completions, for OpenAI and any compatible server
(OPENAI_BASE_URL: vLLM, Ollama, LiteLLM, OpenRouter, ...)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk

from durable_agent.wire import AssistantMessage, ModelRequest, ModelResponse, ToolCall, Usage

from . import DeltaSink
from ._errors import stream_cut
from ._openai import OpenAIClientHolder, raise_provider_error, settings_kwargs, stream_events
from ._output import chat_response_format
from .convert import openai_chat_tools, to_openai_chat

PROVIDER = "OpenAI Chat Completions"


class OpenAIChatProvider(OpenAIClientHolder):
    async def complete(
        self, request: ModelRequest, model_name: str, sink: DeltaSink | None = None
    ) -> ModelResponse:
        kwargs: dict[str, Any] = {
            "model": model_name,
            "messages": to_openai_chat(request.messages, request.instructions),
        }
        if request.tools:
            kwargs["tools"] = openai_chat_tools(request.tools)
        if request.output is not None:
            kwargs["response_format"] = chat_response_format(request.output)
        kwargs.update(settings_kwargs(request, max_tokens_key="max_completion_tokens"))
        if sink is not None:
            return await self._stream(kwargs, sink)
        try:
            response = await self.client.chat.completions.create(**kwargs)
        except openai.APIError as exc:
            raise_provider_error(PROVIDER, exc)
        message = response.choices[0].message
        calls = [
            _tool_call(c.id, c.function.name, c.function.arguments)
            for c in message.tool_calls or []
            if c.type == "function"
        ]
        return _model_response(message.content, calls, response.usage, response.model)

    async def _stream(self, kwargs: dict[str, Any], sink: DeltaSink) -> ModelResponse:
        reply = _StreamedReply(sink)
        # Typed here: with keyword arguments from a dict, mypy cannot pick `create`'s overload.
        chunks: AsyncGenerator[ChatCompletionChunk, None] = stream_events(
            PROVIDER,
            lambda: self.client.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            ),
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                reply.add(chunk)
        if not reply.finished:
            raise stream_cut(PROVIDER, "the stream ended without a finish_reason")
        return reply.response()


def _tool_call(call_id: str, name: str, arguments: str) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=arguments or "{}")


def _model_response(
    content: str | None, calls: list[ToolCall], usage: CompletionUsage | None, model: str
) -> ModelResponse:
    """The one place both paths build their response, so a streamed reply equals a whole one."""
    tokens = Usage(requests=1)
    if usage is not None:
        details = usage.prompt_tokens_details
        tokens = Usage(
            requests=1,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cached_input_tokens=(details.cached_tokens or 0) if details else 0,
        )
    return ModelResponse(
        message=AssistantMessage(content=content, tool_calls=calls), usage=tokens, model=model
    )


@dataclass
class _CallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class _StreamedReply:
    """A reply put together from its chunks. Tool calls come as fragments keyed by `index`: the
    first carries the id and name, the next ones pieces of the arguments."""

    def __init__(self, sink: DeltaSink) -> None:
        self._sink = sink
        self._content: list[str] | None = None  # None: no content at all, as in a whole reply
        self._calls: dict[int, _CallParts] = {}
        self._usage: CompletionUsage | None = None
        self._model = ""
        self.finished = False

    def add(self, chunk: ChatCompletionChunk) -> None:
        self._model = chunk.model
        if chunk.usage is not None:  # the last chunk, after the finish reason
            self._usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # the first choice only, as the non-streaming path reads
            delta = choice.delta
            if delta.content is not None:
                if self._content is None:
                    self._content = []
                self._content.append(delta.content)
                if delta.content:
                    self._sink.text(delta.content)
            for fragment in delta.tool_calls or []:
                call = self._calls.setdefault(fragment.index, _CallParts())
                started = bool(call.id and call.name)
                # Some compatible servers repeat the id and name in every fragment: the first wins.
                call.id = call.id or fragment.id or ""
                if fragment.function is not None:
                    call.name = call.name or fragment.function.name or ""
                    call.arguments.append(fragment.function.arguments or "")
                if not started and call.id and call.name:
                    self._sink.tool_call(call.id, call.name)
            if choice.finish_reason is not None:
                self.finished = True

    def response(self) -> ModelResponse:
        content = None if self._content is None else "".join(self._content)
        calls = [
            _tool_call(c.id, c.name, "".join(c.arguments)) for _, c in sorted(self._calls.items())
        ]
        return _model_response(content, calls, self._usage, self._model)
