"""What every format's conversion shares: text of any flavour, arguments, error results."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from durable_agent.wire import ToolMessage

Wire = dict[str, Any]

ERROR_PREFIX = "Error: "
"""How an error result reads on a wire without an `is_error` field (OpenAI's)."""


def text_of(content: Any) -> str:
    """Content given as a string or as a list of text parts (any provider's flavour)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


def arguments_object(arguments: str) -> dict[str, Any]:
    """Anthropic's `tool_use.input` must be an object. Arguments a model sent as broken JSON are
    kept under `_raw_arguments` so that the history stays truthful instead of being repaired."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def arguments_text(value: Any) -> str:
    if isinstance(value, Mapping) and set(value) == {"_raw_arguments"}:
        return str(value["_raw_arguments"])
    return json.dumps(value)


def error_text(message: ToolMessage) -> str:
    """A tool result's content for a wire without `is_error`: an error says so in its text."""
    if not message.is_error or message.content.startswith(ERROR_PREFIX):
        return message.content
    return ERROR_PREFIX + message.content


def tool_message(tool_call_id: str, content: str, names: Mapping[str, str]) -> ToolMessage:
    """A result from an OpenAI wire: the `Error: ` prefix marks an error; the name is the call's."""
    is_error = content.startswith(ERROR_PREFIX)
    return ToolMessage(
        tool_call_id=tool_call_id,
        name=names.get(tool_call_id),
        content=content.removeprefix(ERROR_PREFIX),
        is_error=is_error,
    )
