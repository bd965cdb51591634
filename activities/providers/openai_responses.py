"""`openai:<model>`: the Responses API, stateless (`store=False`): the workflow owns the
conversation, so nothing is kept on OpenAI's side between calls."""

from __future__ import annotations

from typing import Any

import openai

from durable_agent.convert import openai_responses_tools, to_openai_responses
from durable_agent.wire import AssistantMessage, ModelRequest, ModelResponse, ToolCall, Usage

from ._openai import OpenAIClientHolder, raise_provider_error, settings_kwargs


class OpenAIResponsesProvider(OpenAIClientHolder):
    async def complete(self, request: ModelRequest, model_name: str) -> ModelResponse:
        kwargs: dict[str, Any] = {
            "model": model_name,
            "input": to_openai_responses(request.messages),
            "store": False,
        }
        if request.instructions:
            kwargs["instructions"] = request.instructions
        if request.tools:
            kwargs["tools"] = openai_responses_tools(request.tools)
        kwargs.update(settings_kwargs(request, max_tokens_key="max_output_tokens"))
        try:
            response = await self.client.responses.create(**kwargs)
        except openai.APIError as exc:
            raise_provider_error("OpenAI Responses", exc)
        texts: list[str] = []
        calls: list[ToolCall] = []
        for item in response.output:
            if item.type == "message":
                texts += [part.text for part in item.content if part.type == "output_text"]
            elif item.type == "function_call":
                calls.append(ToolCall(id=item.call_id, name=item.name, arguments=item.arguments))
        usage = Usage(requests=1)
        if response.usage is not None:
            usage = Usage(
                requests=1,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
            )
        return ModelResponse(
            message=AssistantMessage(content="".join(texts) or None, tool_calls=calls),
            usage=usage,
            model=response.model,
        )
