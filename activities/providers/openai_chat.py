"""`openai-chat:<model>`: Chat Completions, for OpenAI and any compatible server
(OPENAI_BASE_URL: vLLM, Ollama, LiteLLM, OpenRouter, ...)."""

from __future__ import annotations

from typing import Any

import openai

from durable_agent.convert import openai_chat_tools, to_openai_chat
from durable_agent.wire import AssistantMessage, ModelRequest, ModelResponse, ToolCall, Usage

from ._openai import OpenAIClientHolder, raise_provider_error, settings_kwargs


class OpenAIChatProvider(OpenAIClientHolder):
    async def complete(self, request: ModelRequest, model_name: str) -> ModelResponse:
        kwargs: dict[str, Any] = {
            "model": model_name,
            "messages": to_openai_chat(request.messages, request.instructions),
        }
        if request.tools:
            kwargs["tools"] = openai_chat_tools(request.tools)
        kwargs.update(settings_kwargs(request, max_tokens_key="max_completion_tokens"))
        try:
            response = await self.client.chat.completions.create(**kwargs)
        except openai.APIError as exc:
            raise_provider_error("OpenAI Chat Completions", exc)
        message = response.choices[0].message
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
            for c in message.tool_calls or []
            if c.type == "function"
        ]
        usage = Usage(requests=1)
        if response.usage is not None:
            usage = Usage(
                requests=1,
                input_tokens=response.usage.prompt_tokens,
                output_tokens=response.usage.completion_tokens,
            )
        return ModelResponse(
            message=AssistantMessage(content=message.content, tool_calls=calls),
            usage=usage,
            model=response.model,
        )
