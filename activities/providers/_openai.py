"""What the two OpenAI providers share: a lazily built client and error mapping."""

from __future__ import annotations

from typing import NoReturn

import openai

from ._errors import connection_error, status_error


class OpenAIClientHolder:
    """The client comes from the environment (OPENAI_API_KEY, OPENAI_BASE_URL) on first use,
    with the SDK's retries off: Temporal retries the activity."""

    def __init__(self, client: openai.AsyncOpenAI | None = None) -> None:
        self._client = client

    @property
    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = openai.AsyncOpenAI(max_retries=0)
        return self._client


def raise_provider_error(provider: str, exc: openai.APIError) -> NoReturn:
    if isinstance(exc, openai.APIStatusError):
        raise status_error(
            provider, exc.status_code, exc.message, dict(exc.response.headers)
        ) from exc
    timed_out = isinstance(exc, openai.APITimeoutError)
    raise connection_error(provider, exc, timed_out) from exc
