"""`openai:<model>`: the Responses API, stateless (`store=False`): the workflow owns the
conversation, so nothing is kept on OpenAI's side between calls."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import openai
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseOutputItemAddedEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)

from durable_agent.wire import AssistantMessage, ModelRequest, ModelResponse, ToolCall, Usage

from . import DeltaSink
from ._errors import NO_COUNT_ENDPOINT, stream_cut
from ._openai import OpenAIClientHolder, raise_provider_error, settings_kwargs, stream_events
from ._output import responses_text_format
from .convert import openai_responses_tools, to_openai_responses

PROVIDER = "OpenAI Responses"

COUNTED = frozenset({"model", "input", "instructions", "tools", "text", "truncation"})
"""What `responses.input_tokens.count` takes of a call's arguments: the prompt, not the sampling."""


class OpenAIResponsesProvider(OpenAIClientHolder):
    async def complete(
        self, request: ModelRequest, model_name: str, sink: DeltaSink | None = None
    ) -> ModelResponse:
        kwargs = _kwargs(request, model_name)
        if sink is not None:
            return await self._stream(kwargs, sink)
        try:
            response = await self.client.responses.create(**kwargs)
        except openai.APIError as exc:
            raise_provider_error(PROVIDER, exc)
        return _model_response(response)

    async def count_tokens(self, request: ModelRequest, model_name: str) -> int | None:
        """The prompt's tokens as the model counts them (`POST /v1/responses/input_tokens`);
        None where the server has no such endpoint (a compatible server)."""
        kwargs = _kwargs(request, model_name)
        counted = {k: v for k, v in kwargs.items() if k in COUNTED}
        try:
            response = await self.client.responses.input_tokens.count(**counted)
        except openai.APIStatusError as exc:
            if exc.status_code in NO_COUNT_ENDPOINT:
                return None
            raise_provider_error(PROVIDER, exc)
        except openai.APIError as exc:
            raise_provider_error(PROVIDER, exc)
        return response.input_tokens

    async def _stream(self, kwargs: dict[str, Any], sink: DeltaSink) -> ModelResponse:
        """Reports text deltas and tool call starts; the response itself is built from the
        final event's whole response, exactly as a non-streaming call builds it (arguments
        deltas are not needed for that).

        It reads on to the body's end after the final event: a stream left unread is closed
        with its connection, and the next call paid a new TCP and TLS handshake (five calls,
        five connections, tests/test_provider_streaming.py)."""
        events: AsyncGenerator[ResponseStreamEvent, None] = stream_events(
            PROVIDER, lambda: self.client.responses.create(**kwargs, stream=True)
        )
        final: Response | None = None
        async with contextlib.aclosing(events):
            try:
                async for event in events:
                    if final is None:
                        final = _event(event, sink)
            except Exception:
                if final is None:
                    raise
                # The reply is whole: a body cut after it costs only the connection.
        if final is None:
            raise stream_cut(PROVIDER, "the stream ended without response.completed")
        return _model_response(final)


def _kwargs(request: ModelRequest, model_name: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": model_name,
        "input": to_openai_responses(request.messages),
        "store": False,
    }
    if request.instructions:
        kwargs["instructions"] = request.instructions
    if request.tools:
        kwargs["tools"] = openai_responses_tools(request.tools)
    if request.output is not None:
        kwargs["text"] = responses_text_format(request.output)
    if request.server_context is not None:
        # OpenAI drops the oldest items of a prompt over the model's window. Its server-side
        # `context_management` compaction is not used: its compacted item would have to be
        # sent back on every later call, and this provider keeps no state between calls.
        kwargs["truncation"] = "auto"
    return kwargs | settings_kwargs(request, max_tokens_key="max_output_tokens")


def _event(event: ResponseStreamEvent, sink: DeltaSink) -> Response | None:
    """Passes one event on to `sink`; the final response when it is the last one."""
    if isinstance(event, ResponseTextDeltaEvent):
        sink.text(event.delta)
    elif isinstance(event, ResponseOutputItemAddedEvent) and isinstance(
        event.item, ResponseFunctionToolCall
    ):
        sink.tool_call(event.item.call_id, event.item.name)
    elif isinstance(event, ResponseCompletedEvent | ResponseIncompleteEvent):
        # `incomplete` (max_output_tokens reached) is a reply, as it is unstreamed.
        return event.response
    elif isinstance(event, ResponseFailedEvent):
        error = event.response.error
        raise stream_cut(PROVIDER, error.message if error else "response.failed")
    elif isinstance(event, ResponseErrorEvent):
        raise stream_cut(PROVIDER, f"{event.code}: {event.message}")
    return None


def _model_response(response: Response) -> ModelResponse:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for item in response.output:
        if item.type == "message":
            texts += [part.text for part in item.content if part.type == "output_text"]
        elif item.type == "function_call":
            calls.append(ToolCall(id=item.call_id, name=item.name, arguments=item.arguments))
    usage = Usage(requests=1)
    if response.usage is not None:
        u = response.usage
        details = u.input_tokens_details
        usage = Usage(
            requests=1,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cached_input_tokens=(details.cached_tokens or 0) if details else 0,
        )
    return ModelResponse(
        message=AssistantMessage(content="".join(texts) or None, tool_calls=calls),
        usage=usage,
        model=response.model,
    )
