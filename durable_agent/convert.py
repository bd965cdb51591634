"""The neutral conversation to and from provider wire formats, tool_call_ids kept exactly.

Used by the provider activities, and by users who bring a history from elsewhere:
`AgentClient.start("support", messages=from_openai_chat(history))`. Every pair round-trips:
`from_openai_chat(to_openai_chat(items))`, `from_anthropic(*to_anthropic(items))`. Status events
are dropped on the way out.

Only Anthropic's wire has a field for a failed tool result (`tool_result.is_error`). For OpenAI an
error result's content starts with `Error: ` (added unless it already starts so), the only way an
OpenAI model learns that the call failed; on the way back that prefix marks the result as an error
again and is removed. A tool result's `name` is taken back from the call it answers. Lost on a
round trip: the `agent` of an assistant message, a user message's `name` (Chat Completions would
take it, but only as `[A-Za-z0-9_-]{1,64}`, and refuses the whole request otherwise), an error
whose own text already began with `Error: ` (it comes back without those seven characters), and
for OpenAI the difference between an error and a result whose text begins with `Error: `.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, overload

from .wire import (
    AssistantMessage,
    Item,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
    prompt_messages,
)

Wire = dict[str, Any]

ERROR_PREFIX = "Error: "
"""How an error result reads on a wire without an `is_error` field (OpenAI's)."""


def _text(content: Any) -> str:
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


def _arguments_object(arguments: str) -> dict[str, Any]:
    """Anthropic's `tool_use.input` must be an object. Arguments a model sent as broken JSON are
    kept under `_raw_arguments` so that the history stays truthful instead of being repaired."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def _arguments_text(value: Any) -> str:
    if isinstance(value, Mapping) and set(value) == {"_raw_arguments"}:
        return str(value["_raw_arguments"])
    return json.dumps(value)


def _error_text(message: ToolMessage) -> str:
    """A tool result's content for a wire without `is_error`: an error says so in its text."""
    if not message.is_error or message.content.startswith(ERROR_PREFIX):
        return message.content
    return ERROR_PREFIX + message.content


def _tool_message(tool_call_id: str, content: str, names: Mapping[str, str]) -> ToolMessage:
    """A result from an OpenAI wire: the `Error: ` prefix marks an error; the name is the call's."""
    is_error = content.startswith(ERROR_PREFIX)
    return ToolMessage(
        tool_call_id=tool_call_id,
        name=names.get(tool_call_id),
        content=content.removeprefix(ERROR_PREFIX),
        is_error=is_error,
    )


# ------------------------------------------------------------------ OpenAI Chat Completions


def to_openai_chat(items: Iterable[Item], instructions: str | None = None) -> list[Wire]:
    out: list[Wire] = [{"role": "system", "content": instructions}] if instructions else []
    for m in prompt_messages(list(items)):
        if isinstance(m, SystemMessage | UserMessage):
            out.append({"role": m.role, "content": m.content})
        elif isinstance(m, AssistantMessage):
            wire: Wire = {"role": "assistant", "content": m.content}
            if m.tool_calls:
                wire["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in m.tool_calls
                ]
            out.append(wire)
        else:
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": _error_text(m)})
    return out


def from_openai_chat(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    out: list[Message] = []
    names: dict[str, str] = {}
    for wire in messages:
        role = wire.get("role")
        if role in ("system", "developer"):
            out.append(SystemMessage(content=_text(wire.get("content"))))
        elif role == "user":
            out.append(UserMessage(content=_text(wire.get("content")), name=wire.get("name")))
        elif role == "assistant":
            calls = [
                ToolCall(
                    id=c["id"],
                    name=c["function"]["name"],
                    arguments=c["function"].get("arguments") or "{}",
                )
                for c in wire.get("tool_calls") or []
            ]
            names.update((c.id, c.name) for c in calls)
            content = _text(wire.get("content")) or None
            out.append(AssistantMessage(content=content, tool_calls=calls))
        elif role == "tool":
            out.append(_tool_message(wire["tool_call_id"], _text(wire.get("content")), names))
        else:
            raise ValueError(f"unknown Chat Completions role {role!r}")
    return out


def openai_chat_tools(tools: Iterable[ToolSpec]) -> list[Wire]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


# ------------------------------------------------------------------ OpenAI Responses


def to_openai_responses(items: Iterable[Item], instructions: str | None = None) -> list[Wire]:
    """`input` items. Instructions go in the request's own `instructions` field, but may be
    given here to get them as a leading system item."""
    out: list[Wire] = [{"role": "system", "content": instructions}] if instructions else []
    for m in prompt_messages(list(items)):
        if isinstance(m, SystemMessage | UserMessage):
            out.append({"role": m.role, "content": m.content})
        elif isinstance(m, AssistantMessage):
            if m.content:
                out.append({"role": "assistant", "content": m.content})
            out.extend(
                {"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}
                for c in m.tool_calls
            )
        else:
            out.append(
                {
                    "type": "function_call_output",
                    "call_id": m.tool_call_id,
                    "output": _error_text(m),
                }
            )
    return out


def from_openai_responses(items: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Function calls following an assistant message (or each other) join one assistant turn."""
    out: list[Message] = []
    names: dict[str, str] = {}
    for wire in items:
        kind = wire.get("type", "message")
        if kind == "function_call":
            call = ToolCall(
                id=wire["call_id"], name=wire["name"], arguments=wire.get("arguments") or "{}"
            )
            names[call.id] = call.name
            last = out[-1] if out else None
            if isinstance(last, AssistantMessage):
                last.tool_calls.append(call)
            else:
                out.append(AssistantMessage(tool_calls=[call]))
        elif kind == "function_call_output":
            out.append(_tool_message(wire["call_id"], _text(wire.get("output")), names))
        elif kind == "message":
            role, content = wire.get("role"), _text(wire.get("content"))
            if role in ("system", "developer"):
                out.append(SystemMessage(content=content))
            elif role == "user":
                out.append(UserMessage(content=content))
            elif role == "assistant":
                out.append(AssistantMessage(content=content or None))
            else:
                raise ValueError(f"unknown Responses role {role!r}")
        elif kind == "reasoning":
            continue  # provider-internal; nothing the neutral conversation can hold
        else:
            raise ValueError(f"unknown Responses item type {kind!r}")
    return out


def openai_responses_tools(tools: Iterable[ToolSpec]) -> list[Wire]:
    return [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
            "strict": False,
        }
        for t in tools
    ]


# ------------------------------------------------------------------ Anthropic Messages


class AnthropicPrompt(NamedTuple):
    """What `to_anthropic` gives: unpack it (`system, messages = ...`) or pass it back whole
    (`from_anthropic(*prompt)`)."""

    system: str | None
    messages: list[Wire]


def to_anthropic(items: Iterable[Item]) -> AnthropicPrompt:
    """(system, messages). Consecutive user-side blocks (tool results, then any user text) are
    merged into one user turn: the Messages API wants user and assistant turns to alternate."""
    system: list[str] = []
    out: list[Wire] = []

    def user_blocks() -> list[Wire]:
        if not out or out[-1]["role"] != "user":
            out.append({"role": "user", "content": []})
        blocks: list[Wire] = out[-1]["content"]
        return blocks

    for m in prompt_messages(list(items)):
        if isinstance(m, SystemMessage):
            system.append(m.content)
        elif isinstance(m, UserMessage):
            user_blocks().append({"type": "text", "text": m.content})
        elif isinstance(m, ToolMessage):
            block: Wire = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id,
                "content": m.content,
            }
            if m.is_error:
                block["is_error"] = True
            user_blocks().append(block)
        else:
            content: list[Wire] = [{"type": "text", "text": m.content}] if m.content else []
            content += [
                {
                    "type": "tool_use",
                    "id": c.id,
                    "name": c.name,
                    "input": _arguments_object(c.arguments),
                }
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": content})
    return AnthropicPrompt("\n\n".join(system) or None, out)


@overload
def from_anthropic(
    system: str | None, messages: Sequence[Mapping[str, Any]], /
) -> list[Message]: ...
@overload
def from_anthropic(
    messages: Sequence[Mapping[str, Any]], system: str | None = None
) -> list[Message]: ...
def from_anthropic(
    messages: Sequence[Mapping[str, Any]] | str | None = None,
    system: Sequence[Mapping[str, Any]] | str | None = None,
) -> list[Message]:
    """The neutral conversation from Anthropic's `system` and `messages`. Takes them in the
    order `to_anthropic` gives them, `from_anthropic(*to_anthropic(items))`, and in the order
    of earlier versions, `from_anthropic(messages, system=...)`: the list is the messages."""
    if messages is None or isinstance(messages, str):
        messages, system = system, messages  # (system, messages), as to_anthropic gives them
    if messages is None or isinstance(messages, str) or not isinstance(system, str | None):
        raise TypeError("from_anthropic takes (system, messages) or (messages, system=...)")
    return _from_anthropic(messages, system)


def _from_anthropic(messages: Sequence[Mapping[str, Any]], system: str | None) -> list[Message]:
    out: list[Message] = [SystemMessage(content=system)] if system else []
    names: dict[str, str] = {}
    for wire in messages:
        role, content = wire.get("role"), wire.get("content")
        blocks: list[Any] = (
            [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        )
        if role == "assistant":
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            calls = [
                ToolCall(id=b["id"], name=b["name"], arguments=_arguments_text(b.get("input", {})))
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            names.update((c.id, c.name) for c in calls)
            out.append(AssistantMessage(content=text or None, tool_calls=calls))
        elif role == "user":
            for b in blocks:
                if b.get("type") == "tool_result":
                    out.append(
                        ToolMessage(
                            tool_call_id=b["tool_use_id"],
                            name=names.get(b["tool_use_id"]),
                            content=_text(b.get("content")),
                            is_error=bool(b.get("is_error", False)),
                        )
                    )
                elif b.get("type") == "text":
                    out.append(UserMessage(content=b["text"]))
        else:
            raise ValueError(f"unknown Anthropic role {role!r}")
    return out


def anthropic_tools(tools: Iterable[ToolSpec]) -> list[Wire]:
    return [
        {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
    ]
