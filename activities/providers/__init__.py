"""Model providers: each turns a neutral `ModelRequest` into one provider call.

A model string is `prefix:name`. The prefix picks the provider:
`openai:` (Responses API), `openai-chat:` (Chat Completions, any compatible server),
`anthropic:` (Messages API) and `scripted:` (offline, deterministic, for demos and tests).
"""

from __future__ import annotations

from typing import Protocol

from durable_agent.wire import ModelRequest, ModelResponse


class ModelProvider(Protocol):
    """Calls one model. Raises `temporalio.exceptions.ApplicationError` for provider errors."""

    async def complete(self, request: ModelRequest, model_name: str) -> ModelResponse: ...


def split_model(model: str) -> tuple[str, str]:
    """`"openai:gpt-4.1"` -> `("openai", "gpt-4.1")`."""
    prefix, sep, name = model.partition(":")
    if not sep or not prefix or not name:
        raise ValueError(f"model {model!r} must look like 'provider:model-name'")
    return prefix, name
