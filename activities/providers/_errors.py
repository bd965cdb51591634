"""Provider HTTP errors as Temporal errors: Temporal owns retries, so the SDKs' are off and
this decides what is worth retrying."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from datetime import timedelta

from temporalio.exceptions import ApplicationError

from durable_agent.wire import CONTEXT_TOO_LONG

TOO_LONG_SIGNS = (
    "context_length_exceeded",  # OpenAI's `code`, where the message carries the whole body
    "maximum context length is",  # Chat Completions: "This model's maximum context length is"
    "exceeds the context window",  # Responses: "Your input exceeds the context window of this"
    "prompt is too long",  # Anthropic: "prompt is too long: 208310 tokens > 200000 maximum"
    "exceed context limit",  # Anthropic: "input length and `max_tokens` exceed context limit"
)
"""How each provider says, in its 400, that a prompt is longer than the model's context (the
SDKs put the body's message, or the whole body, in the error's message)."""

NO_COUNT_ENDPOINT = frozenset({404, 405, 501})
"""How a compatible server without a token-counting endpoint answers a count: the estimate
stands for the rest of the run. A 400 is a real refusal of that request (an image, a schema),
which fails that one count and leaves counting on."""

_TYPES = {
    400: "ProviderBadRequest",
    401: "ProviderAuth",
    403: "ProviderAuth",
    404: "ProviderNotFound",
}


def retry_after(headers: Mapping[str, str]) -> timedelta | None:
    """`retry-after-ms`, or `retry-after` in seconds or as an HTTP date."""
    if value := headers.get("retry-after-ms"):
        try:
            return timedelta(milliseconds=float(value))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return timedelta(seconds=float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return timedelta(seconds=max(0.0, parsed.timestamp() - time.time()))


def status_error(
    provider: str, status: int, message: str, headers: Mapping[str, str]
) -> ApplicationError:
    """408, 409, 429 and 5xx are retried (after Retry-After when given); other 4xx are not:
    the same request would fail the same way."""
    retryable = status in (408, 409, 429) or status >= 500
    if status == 429:
        kind = "ProviderRateLimited"
    elif status >= 500 or status in (408, 409):
        kind = "ProviderUnavailable"
    elif status == 400 and any(sign in message for sign in TOO_LONG_SIGNS):
        kind = CONTEXT_TOO_LONG  # the workflow compacts its window and tries once more
    else:
        kind = _TYPES.get(status, "ProviderRejected")
    return ApplicationError(
        f"{provider} returned HTTP {status}: {message}",
        type=kind,
        non_retryable=not retryable,
        next_retry_delay=retry_after(headers) if retryable else None,
    )


def connection_error(provider: str, exc: Exception, timed_out: bool) -> ApplicationError:
    return ApplicationError(
        f"{provider} {'timed out' if timed_out else 'unreachable'}: {exc}",
        type="ProviderTimeout" if timed_out else "ProviderUnavailable",
    )


def stream_cut(provider: str, why: str | BaseException) -> ApplicationError:
    """A streamed reply that stopped before its end: the connection dropped, the server closed
    the stream early or reported an error mid-way. Retryable: the same call usually succeeds,
    and a partial reply is never returned as if it were whole."""
    if isinstance(why, BaseException):
        cause = why.__cause__
        why = f"{why} ({cause})" if cause is not None and str(cause) else str(why)
    if any(sign in why for sign in TOO_LONG_SIGNS):
        # A streamed Responses call reports a prompt over the context as an `error` event.
        return ApplicationError(
            f"{provider} refused the prompt as too long: {why}",
            type=CONTEXT_TOO_LONG,
            non_retryable=True,
        )
    return ApplicationError(
        f"{provider} stream was cut before the reply finished: {why}",
        type="ProviderStreamCut",
    )
