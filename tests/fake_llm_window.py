"""What the fake LLM server does about a model's context window: each API's own refusal of a
prompt over it, the providers' token-counting endpoints and their own trimming of a prompt.

`too_long(...)` is the refusal, as each API words and shapes it (a 400, or for a streamed
Responses call an error event inside the stream). `count(path, body)` answers Anthropic's
`POST /v1/messages/count_tokens` and OpenAI's `POST /v1/responses/input_tokens` with the count
the server refuses by. `trim(...)` applies what a request asks the provider to trim, as the
provider would, before the server counts it: Anthropic's context editing (`context_management`
with `clear_tool_uses_20250919`, refused without its beta header) clears the oldest tool
results but the last `keep` once the prompt passes `trigger`, if that frees `clear_at_least`;
OpenAI Responses' `truncation: "auto"` drops items from the start of the input until the prompt
and its reply fit the window.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .fake_llm_content import BadRequest
from .fake_llm_script import Reply

COUNT_PATHS = {
    "/v1/messages/count_tokens": "/v1/messages",
    "/v1/responses/input_tokens": "/v1/responses",
}
"""Each counting endpoint and the endpoint whose prompt it counts."""

CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"
CLEARED = "[cleared to save context]"

Count = Callable[[str, dict[str, Any]], int]


def count(path: str, body: dict[str, Any], tokens: Count) -> dict[str, Any] | None:
    """The counting endpoint's answer; None for any other path."""
    counted = COUNT_PATHS.get(path)
    if counted is None:
        return None
    n = tokens(counted, body)
    if counted == "/v1/messages":
        return {"input_tokens": n}
    return {"object": "response.input_tokens", "input_tokens": n}


def trim(
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    window: int,
    max_tokens: int,
    tokens: Count,
) -> dict[str, Any] | None:
    """The body as the provider would read it after its own trimming; None: nothing asked or
    nothing trimmed."""
    if path == "/v1/messages" and body.get("context_management") is not None:
        beta = {k.lower(): v for k, v in headers.items()}.get("anthropic-beta", "")
        if CONTEXT_MANAGEMENT_BETA not in beta:
            raise BadRequest("context_management: requires the context-management beta header")
        return _clear_tool_uses(body, tokens)
    if path == "/v1/responses" and body.get("truncation") == "auto":
        return _truncate(body, window, max_tokens, tokens)
    return None


def _clear_tool_uses(body: dict[str, Any], tokens: Count) -> dict[str, Any] | None:
    edits = body["context_management"].get("edits") or []
    edit = next((e for e in edits if e.get("type") == "clear_tool_uses_20250919"), None)
    if edit is None:
        return None
    before = tokens("/v1/messages", body)
    if before <= edit["trigger"]["value"]:
        return None
    trimmed = copy.deepcopy(body)
    results = [
        block
        for message in trimmed["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    keep = edit["keep"]["value"]
    for block in results[: max(0, len(results) - keep)]:
        block["content"] = CLEARED
    freed = before - tokens("/v1/messages", trimmed)
    least = (edit.get("clear_at_least") or {}).get("value", 0)
    return trimmed if freed > 0 and freed >= least else None


def _truncate(
    body: dict[str, Any], window: int, max_tokens: int, tokens: Count
) -> dict[str, Any] | None:
    items = list(body["input"])
    dropped = 0

    def over() -> bool:
        return tokens("/v1/responses", {**body, "input": items}) + max_tokens > window

    while len(items) > 1 and over():
        items.pop(0)
        dropped += 1
        # An output whose call was dropped goes too: the API never keeps half a pair.
        while len(items) > 1 and items[0].get("type") == "function_call_output":
            items.pop(0)
            dropped += 1
    return {**body, "input": items} if dropped else None


def too_long(
    path: str, tokens: int, max_tokens: int, window: int, streamed: bool = False
) -> Reply | None:
    """Each API's own refusal of a prompt over the model's context window (None: it fits). A
    streamed Responses call is refused inside its stream: an `error` event after the first two."""
    if path == "/v1/messages":
        if tokens > window:
            return Reply(
                status=400, error_message=f"prompt is too long: {tokens} tokens > {window} maximum"
            )
        if tokens + max_tokens > window:
            message = (
                f"input length and `max_tokens` exceed context limit: {tokens} + {max_tokens} > "
                f"{window}, decrease input length or `max_tokens` and try again"
            )
            return Reply(status=400, error_message=message)
        return None
    if path == "/v1/responses":
        if tokens + max_tokens <= window:
            return None
        message = (
            "Your input exceeds the context window of this model. Please adjust your input "
            "and try again."
        )
        if streamed:
            return Reply(fail_after=2, error_message=message, error_code="context_length_exceeded")
        return Reply(
            status=400,
            error_message=message,
            error_code="context_length_exceeded",
            error_param="input",
        )
    if tokens + max_tokens <= window:
        return None
    message = (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{tokens + max_tokens} tokens ({tokens} in the messages, {max_tokens} in the "
        "completion). Please reduce the length of the messages or completion."
    )
    return Reply(
        status=400,
        error_message=message,
        error_code="context_length_exceeded",
        error_param="messages",
    )
