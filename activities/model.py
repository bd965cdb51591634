"""The model activity: one provider call per workflow turn."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Iterable, Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_agent.authoring._agent import ScriptedModel
from durable_agent.wire import (
    COUNT_ACTIVITY,
    SUMMARY_ACTIVITY,
    CountRequest,
    ModelRequest,
    ModelResponse,
    SummaryRequest,
    SummaryResponse,
    TokenCount,
)

from .attachments import StoredBytes
from .heartbeat import heartbeating
from .providers import ModelProvider, TokenCounter, split_model
from .providers.convert import UnsupportedContent
from .providers.scripted import ScriptedProvider
from .streaming import DeltaPublisher
from .summary import summarize
from .transcripts import TranscriptCache


def _openai_responses() -> ModelProvider:
    from .providers.openai_responses import OpenAIResponsesProvider

    return OpenAIResponsesProvider()


def _openai_chat() -> ModelProvider:
    from .providers.openai_chat import OpenAIChatProvider

    return OpenAIChatProvider()


def _anthropic() -> ModelProvider:
    from .providers.anthropic_messages import AnthropicProvider

    return AnthropicProvider()


# Imported on first use: a worker that only runs Anthropic models never loads the OpenAI SDK.
PROVIDER_FACTORIES: dict[str, Callable[[], ModelProvider]] = {
    "openai": _openai_responses,
    "openai-chat": _openai_chat,
    "anthropic": _anthropic,
}


@functools.cache
def _takes_sink(kind: type[ModelProvider]) -> bool:
    return "sink" in inspect.signature(kind.complete).parameters


def streams(provider: ModelProvider) -> bool:
    """Providers written before streaming (no `sink` parameter) are called as they were."""
    return _takes_sink(type(provider))


class ModelActivities:
    """Holds the providers (and their HTTP clients) for the worker's lifetime."""

    def __init__(
        self,
        scripted: Mapping[str, ScriptedModel] | None = None,
        providers: Mapping[str, ModelProvider] | None = None,
        preload: Iterable[str] = (),
    ) -> None:
        """`preload`: the provider prefixes of the served agents' models. Their SDKs are
        imported as the worker starts, in the background: otherwise a fresh worker's first call
        pays the import (openai: 1.5-3.3 s on our loaded 2-core machines) on top of taking over a
        dead worker's call (tests/test_crash_recovery.py). Other SDKs are never loaded."""
        self._providers: dict[str, ModelProvider] = {
            "scripted": ScriptedProvider(dict(scripted or {}))
        }
        self._providers.update(providers or {})
        self.transcripts = TranscriptCache()
        self.stored = StoredBytes()
        wanted = [p for p in dict.fromkeys(preload) if p in PROVIDER_FACTORIES]
        if wanted:
            threading.Thread(
                target=self._import, args=(wanted,), name="provider-import", daemon=True
            ).start()

    def _import(self, prefixes: list[str]) -> None:
        for prefix in prefixes:
            with contextlib.suppress(Exception):  # the first call reports it
                self.provider(prefix)

    def provider(self, prefix: str) -> ModelProvider:
        provider = self._providers.get(prefix)
        if provider is None:
            factory = PROVIDER_FACTORIES.get(prefix)
            if factory is None:
                known = ", ".join(sorted({*self._providers, *PROVIDER_FACTORIES}))
                raise ApplicationError(
                    f"unknown model provider {prefix!r} (known: {known})",
                    type="InvalidModel",
                    non_retryable=True,
                )
            provider = self._providers[prefix] = factory()
        return provider

    @activity.defn(name="model.complete")
    async def complete(self, request: ModelRequest) -> ModelResponse:
        # Heartbeats, so a dead worker's call is retried in seconds and a cancelled run's
        # cancellation reaches the HTTP call (as asyncio.CancelledError).
        async with heartbeating():
            provider, name = await self._provider_for(request.model)
            full = await self.transcripts.full_request(request)
            sent = await self._for_provider(self.transcripts.windowed(request, full))
            try:
                if request.stream_turn is None or not streams(provider) or activity.info().is_local:
                    response = await provider.complete(sent, name)
                else:
                    async with DeltaPublisher(request.stream_turn) as sink:
                        response = await provider.complete(sent, name, sink)
            except UnsupportedContent as exc:  # a retry would be refused the same way
                raise ApplicationError(
                    str(exc), type="UnsupportedContent", non_retryable=True
                ) from None
        if request.agent is not None:
            response.message.agent = request.agent
        self.transcripts.remember(request, full, response.message)
        return response

    @activity.defn(name=SUMMARY_ACTIVITY)
    async def summarize(self, request: SummaryRequest) -> SummaryResponse:
        """Fold what falls out of the model's window into its summary (bounded calls, never
        streamed: nobody watches a summary being written)."""
        async with heartbeating():
            provider, name = await self._provider_for(request.model)
            ref = request.transcript
            messages = (
                await self.transcripts.span(ref, request.start)
                if ref is not None
                else request.messages
            )

            async def complete(call: ModelRequest) -> ModelResponse:
                return await provider.complete(await self._for_provider(call), name)

            return await summarize(request, messages, complete)

    @activity.defn(name=COUNT_ACTIVITY)
    async def count_tokens(self, counting: CountRequest) -> TokenCount:
        """The prompt `model.complete` would send for the request, counted by the provider's
        endpoint (the workflow asks only near its window's limit)."""
        request = counting.request
        async with heartbeating():
            provider, name = await self._provider_for(request.model)
            if not isinstance(provider, TokenCounter):
                return TokenCount()
            full = await self.transcripts.full_request(request)
            sent = await self._for_provider(self.transcripts.windowed(request, full))
            return TokenCount(input_tokens=await provider.count_tokens(sent, name))

    async def _provider_for(self, model: str) -> tuple[ModelProvider, str]:
        """The provider of `provider:name`, and the name it knows the model by."""
        try:
            prefix, name = split_model(model)
        except ValueError as exc:
            raise ApplicationError(str(exc), type="InvalidModel", non_retryable=True) from None
        provider = self._providers.get(prefix)
        if provider is None:
            # First use imports the provider's SDK: 2-5 s for openai on our loaded 2-core
            # machines, which in the event loop would stall every call's heartbeats.
            provider = await asyncio.to_thread(self.provider, prefix)
        return provider, name

    async def _for_provider(self, full: ModelRequest) -> ModelRequest:
        """The request as a provider takes it: attachments' bytes back from payload storage
        (the cached transcript keeps only their references) and the run's prompt-cache key."""
        converter = lambda: activity.client().data_converter  # noqa: E731 - asked only if used
        messages = await self.stored.resolve(converter, full.messages)
        key = full.cache_key or activity.info().workflow_id or None
        return full.model_copy(update={"messages": messages, "cache_key": key})
