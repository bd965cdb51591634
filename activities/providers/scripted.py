"""The offline provider: answers from `ScriptedModel`s registered with the worker."""

from __future__ import annotations

import asyncio
import re

from temporalio.exceptions import ApplicationError

from durable_agent.authoring._agent import ScriptedModel
from durable_agent.wire import AssistantMessage, Message, ModelRequest, ModelResponse, Usage

from . import DeltaSink


class ScriptedProvider:
    def __init__(self, models: dict[str, ScriptedModel]) -> None:
        self._models = models

    async def complete(
        self, request: ModelRequest, model_name: str, sink: DeltaSink | None = None
    ) -> ModelResponse:
        model = self._models.get(model_name)
        if model is None:
            known = ", ".join(sorted(self._models)) or "none"
            raise ApplicationError(
                f"no scripted model {model_name!r} on this worker (known: {known})",
                type="UnknownModel",
                non_retryable=True,
            )
        try:
            message = model.reply(request)
        except IndexError as exc:
            raise ApplicationError(str(exc), type="ScriptExhausted", non_retryable=True) from None
        if sink is not None:
            await _stream(message, sink, model.chunk_delay)
        prompt_chars = sum(_chars(m) for m in request.messages)
        reply_chars = _chars(message)
        # A rough 4-characters-a-token estimate keeps usage figures meaningful offline.
        usage = Usage(requests=1, input_tokens=prompt_chars // 4, output_tokens=reply_chars // 4)
        return ModelResponse(message=message, usage=usage, model=model.model_string)


async def _stream(message: AssistantMessage, sink: DeltaSink, delay: float) -> None:
    """Word by word, as a model would."""
    for word in re.findall(r"\S+\s*|\s+", message.content or ""):
        if delay:
            await asyncio.sleep(delay)
        sink.text(word)
    for call in message.tool_calls:
        sink.tool_call(call.id, call.name)


def _chars(message: Message) -> int:
    calls = getattr(message, "tool_calls", ())
    return len(message.content or "") + sum(len(c.name) + len(c.arguments) for c in calls)
