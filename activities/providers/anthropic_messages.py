"""`anthropic:<model>`: the Messages API (ANTHROPIC_BASE_URL honoured by the SDK)."""

from __future__ import annotations

import json
import os
from typing import Any

import anthropic
import httpx2
from temporalio.exceptions import ApplicationError

from durable_agent.wire import (
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    ServerContext,
    ToolCall,
    Usage,
)

from . import DeltaSink
from ._errors import NO_COUNT_ENDPOINT, connection_error, status_error, stream_cut
from ._output import anthropic_output, forced_answer
from .convert import anthropic_tools, to_anthropic

PROVIDER = "Anthropic"

DEFAULT_MAX_TOKENS = 4096  # the Messages API requires one


class AnthropicProvider:
    def __init__(self, client: anthropic.AsyncAnthropic | None = None) -> None:
        self._client = client

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            base_url = os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
            self._client = anthropic.AsyncAnthropic(base_url=base_url, max_retries=0)
        return self._client

    async def complete(
        self, request: ModelRequest, model_name: str, sink: DeltaSink | None = None
    ) -> ModelResponse:
        kwargs = self._kwargs(request, model_name)
        if sink is not None:
            reply = await self._stream(kwargs, sink)
        else:
            try:
                response = await self.client.messages.create(**kwargs)
            except anthropic.APIError as exc:
                raise _provider_error(exc) from exc
            reply = _model_response(response)
        if request.output is None:
            return reply
        return reply.model_copy(update={"message": forced_answer(reply.message)})

    async def count_tokens(self, request: ModelRequest, model_name: str) -> int | None:
        """The prompt's tokens as the model counts them (`POST /v1/messages/count_tokens`);
        None where the server has no such endpoint (a compatible server)."""
        kwargs = self._kwargs(request, model_name)
        counted = {k: v for k, v in kwargs.items() if k in COUNTED}
        try:
            response = await self.client.messages.count_tokens(**counted)
        except anthropic.APIStatusError as exc:
            if exc.status_code in NO_COUNT_ENDPOINT:
                return None
            raise _provider_error(exc) from exc
        except anthropic.APIError as exc:
            raise _provider_error(exc) from exc
        return response.input_tokens

    def _kwargs(self, request: ModelRequest, model_name: str) -> dict[str, Any]:
        system, messages = to_anthropic(request.messages)
        system = "\n\n".join(s for s in (request.instructions, system) if s) or None
        s = request.settings
        kwargs: dict[str, Any] = {
            "model": model_name,
            "messages": messages,
            "max_tokens": s.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system:
            kwargs["system"] = system
        if request.tools:
            kwargs["tools"] = anthropic_tools(request.tools)
            choice = {"auto": "auto", "required": "any", "none": "none"}.get(s.tool_choice or "")
            if choice or s.parallel_tool_calls is False:
                kwargs["tool_choice"] = {"type": choice or "auto"}
                if s.parallel_tool_calls is False:
                    kwargs["tool_choice"]["disable_parallel_tool_use"] = True
        if s.prompt_cache:
            cache_breakpoints(kwargs)
        if request.output is not None:
            anthropic_output(kwargs, request.output, model_name)
        # This SDK no longer has sampling parameters in its signature; servers that accept them
        # still get them in the body.
        sampling = {"temperature": s.temperature, "top_p": s.top_p}
        extra_body: dict[str, Any] = {k: v for k, v in sampling.items() if v is not None}
        if request.server_context is not None:
            extra_body["context_management"] = context_management(request.server_context)
            kwargs["extra_headers"] = {"anthropic-beta": CONTEXT_MANAGEMENT_BETA}
        if extra_body:
            kwargs["extra_body"] = extra_body
        kwargs.update(s.extra)
        return kwargs

    async def _stream(self, kwargs: dict[str, Any], sink: DeltaSink) -> ModelResponse:
        """Reports text deltas and tool call starts; the response is built from the SDK's
        accumulated message, exactly as a non-streaming call builds it (so the arguments are
        `json.dumps` of the same parsed input)."""
        stopped = False
        try:
            async with self.client.messages.stream(**kwargs) as stream:
                try:
                    async for event in stream:
                        if event.type == "content_block_start":
                            block = event.content_block
                            if block.type == "tool_use":
                                sink.tool_call(block.id, block.name)
                        elif event.type == "content_block_delta":
                            if event.delta.type == "text_delta":
                                sink.text(event.delta.text)
                        elif event.type == "message_stop":
                            stopped = True
                    message = await stream.get_final_message()
                # Mid-stream, the SDK lets its transport's errors through unwrapped, and turns
                # an `error` event into a status error carrying the stream's HTTP 200.
                except (anthropic.APIError, httpx2.TransportError) as exc:
                    raise stream_cut(PROVIDER, exc) from exc
        except anthropic.APIError as exc:  # before the stream started
            raise _provider_error(exc) from exc
        if not stopped:
            raise stream_cut(PROVIDER, "the stream ended without message_stop")
        return _model_response(message)


COUNTED = frozenset({"model", "messages", "system", "tools", "tool_choice", "output_config"})
"""What `messages.count_tokens` takes of a call's arguments: the prompt, not the sampling."""
CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"
"""The beta header Anthropic requires for `context_management`."""


def context_management(server: ServerContext) -> dict[str, Any]:
    """Anthropic's context editing: past `trigger_tokens` of prompt, the oldest tool results
    are cleared (the calls stay, each paired with a placeholder result), the last ones kept."""
    edit = {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "input_tokens", "value": server.trigger_tokens},
        "keep": {"type": "tool_uses", "value": server.keep_tool_uses},
        "clear_at_least": {"type": "input_tokens", "value": server.clear_at_least},
    }
    return {"edits": [edit]}


CACHE = {"type": "ephemeral"}


def cache_breakpoints(kwargs: dict[str, Any]) -> None:
    """Marks the ends of what stays the same from one call of a run to the next: the tools, the
    system prompt, and the conversation so far (its last block). Anthropic caches the prefix up
    to each mark; the next call, whose conversation only grew, reads it back (it looks for an
    earlier mark up to 20 blocks before each of its own). Three of the four marks allowed."""
    if kwargs.get("tools"):
        kwargs["tools"][-1] = {**kwargs["tools"][-1], "cache_control": CACHE}
    if kwargs.get("system"):
        kwargs["system"] = [{"type": "text", "text": kwargs["system"], "cache_control": CACHE}]
    messages = kwargs["messages"]
    if messages and messages[-1]["content"]:
        last = messages[-1]
        blocks = last["content"]
        messages[-1] = {**last, "content": [*blocks[:-1], {**blocks[-1], "cache_control": CACHE}]}


def _provider_error(exc: anthropic.APIError) -> ApplicationError:
    if isinstance(exc, anthropic.APIStatusError):
        return status_error(PROVIDER, exc.status_code, exc.message, dict(exc.response.headers))
    return connection_error(PROVIDER, exc, isinstance(exc, anthropic.APITimeoutError))


def _model_response(response: anthropic.types.Message) -> ModelResponse:
    texts = [b.text for b in response.content if b.type == "text"]
    calls = [
        ToolCall(id=b.id, name=b.name, arguments=json.dumps(b.input))
        for b in response.content
        if b.type == "tool_use"
    ]
    # Anthropic's input_tokens are those after the last cache mark: the written and the read
    # ones come apart. Usage counts every input token, and the read ones again as cached.
    u = response.usage
    written, read = u.cache_creation_input_tokens or 0, u.cache_read_input_tokens or 0
    usage = Usage(
        requests=1,
        input_tokens=u.input_tokens + written + read,
        output_tokens=u.output_tokens,
        cached_input_tokens=read,
    )
    return ModelResponse(
        message=AssistantMessage(content="".join(texts) or None, tool_calls=calls),
        usage=usage,
        model=response.model,
    )
