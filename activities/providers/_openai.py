"""What the two OpenAI providers share: a lazily built client, error mapping and the events
of a streamed call."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import openai

from durable_agent.wire import ModelRequest

from ._errors import connection_error, status_error, stream_cut

EventT = TypeVar("EventT")


class OpenAIClientHolder:
    """The client comes from the environment (OPENAI_API_KEY, OPENAI_BASE_URL) on first use,
    with the SDK's retries off: Temporal retries the activity."""

    def __init__(self, client: openai.AsyncOpenAI | None = None) -> None:
        self._client = client

    @property
    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            # An empty OPENAI_BASE_URL (compose files pass unset variables as "") means unset.
            base_url = os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
            self._client = openai.AsyncOpenAI(base_url=base_url, max_retries=0)
        return self._client


def settings_kwargs(request: ModelRequest, max_tokens_key: str) -> dict[str, Any]:
    """The request's settings as keyword arguments; unset ones are left to the server."""
    s = request.settings
    chosen = {
        "temperature": s.temperature,
        "top_p": s.top_p,
        max_tokens_key: s.max_tokens,
        "tool_choice": s.tool_choice if request.tools else None,
        "parallel_tool_calls": s.parallel_tool_calls if request.tools else None,
        # One key per run: OpenAI routes a run's calls to the same cache (set by the activity).
        "prompt_cache_key": request.cache_key if s.prompt_cache else None,
    }
    return {k: v for k, v in chosen.items() if v is not None} | s.extra


def raise_provider_error(provider: str, exc: openai.APIError) -> NoReturn:
    if isinstance(exc, openai.APIStatusError):
        raise status_error(
            provider, exc.status_code, exc.message, dict(exc.response.headers)
        ) from exc
    timed_out = isinstance(exc, openai.APITimeoutError)
    raise connection_error(provider, exc, timed_out) from exc


async def stream_events(
    provider: str, open_stream: Callable[[], Awaitable[openai.AsyncStream[EventT]]]
) -> AsyncGenerator[EventT, None]:
    """The events of a streamed call. Errors before the stream starts map as a non-streaming
    call's; errors once it has started mean the stream was cut. The HTTP response is closed when
    the caller stops reading, returns or is cancelled (iterate under `contextlib.aclosing`)."""
    try:
        stream = await open_stream()
    except openai.APIError as exc:
        raise_provider_error(provider, exc)
    async with stream:
        try:
            async for event in stream:
                yield event
        except openai.APIError as exc:
            raise stream_cut(provider, exc) from exc
