"""Model providers: each turns a neutral `ModelRequest` into one provider call.

A model string is `prefix:name`. The prefix picks the provider:
`openai:` (Responses API), `openai-chat:` (Chat Completions, any compatible server),
`anthropic:` (Messages API) and `scripted:` (offline, deterministic, for demos and tests).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from durable_agent.wire import ModelRequest, ModelResponse


class DeltaSink(Protocol):
    """Where a streaming call reports its reply as it arrives, for observers only: the
    response a provider returns is the same whether or not it streamed."""

    def text(self, text: str) -> None:
        """More of the reply's text."""

    def tool_call(self, tool_call_id: str, name: str) -> None:
        """The model started a tool call (its arguments come whole in the response)."""


class ModelProvider(Protocol):
    """Calls one model. Raises `temporalio.exceptions.ApplicationError` for provider errors.
    With a `sink`, the call streams and reports deltas to it as they arrive."""

    async def complete(
        self, request: ModelRequest, model_name: str, sink: DeltaSink | None = None
    ) -> ModelResponse: ...


@runtime_checkable
class TokenCounter(Protocol):
    """A provider with a token-counting endpoint (Anthropic, OpenAI Responses)."""

    async def count_tokens(self, request: ModelRequest, model_name: str) -> int | None:
        """The prompt's tokens as the model counts them; None where the server has no such
        endpoint."""


def split_model(model: str) -> tuple[str, str]:
    """`"openai:gpt-4.1"` -> `("openai", "gpt-4.1")`."""
    prefix, sep, name = model.partition(":")
    if not sep or not prefix or not name:
        raise ValueError(f"model {model!r} must look like 'provider:model-name'")
    return prefix, name
