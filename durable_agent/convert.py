"""The neutral conversation to and from provider wire formats, tool_call_ids kept exactly.

Used by the provider activities, and by users who bring a history from elsewhere:
`AgentClient.start("support", messages=from_openai_chat(history))`. Status events are dropped
on the way out. What a wire format cannot carry is lost on a round trip: the `agent` of an
assistant message, a tool result's tool `name`, and (for OpenAI) a tool result's `is_error`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
    return out


def from_openai_chat(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    out: list[Message] = []
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
            content = _text(wire.get("content")) or None
            out.append(AssistantMessage(content=content, tool_calls=calls))
        elif role == "tool":
            out.append(
                ToolMessage(tool_call_id=wire["tool_call_id"], content=_text(wire.get("content")))
            )
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
                {"type": "function_call_output", "call_id": m.tool_call_id, "output": m.content}
            )
    return out


def from_openai_responses(items: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Function calls following an assistant message (or each other) join one assistant turn."""
    out: list[Message] = []
    for wire in items:
        kind = wire.get("type", "message")
        if kind == "function_call":
            call = ToolCall(
                id=wire["call_id"], name=wire["name"], arguments=wire.get("arguments") or "{}"
            )
            last = out[-1] if out else None
            if isinstance(last, AssistantMessage):
                last.tool_calls.append(call)
            else:
                out.append(AssistantMessage(tool_calls=[call]))
        elif kind == "function_call_output":
            out.append(ToolMessage(tool_call_id=wire["call_id"], content=_text(wire.get("output"))))
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


def to_anthropic(items: Iterable[Item]) -> tuple[str | None, list[Wire]]:
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
    return ("\n\n".join(system) or None), out


def from_anthropic(
    messages: Sequence[Mapping[str, Any]], system: str | None = None
) -> list[Message]:
    out: list[Message] = [SystemMessage(content=system)] if system else []
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
            out.append(AssistantMessage(content=text or None, tool_calls=calls))
        elif role == "user":
            for b in blocks:
                if b.get("type") == "tool_result":
                    out.append(
                        ToolMessage(
                            tool_call_id=b["tool_use_id"],
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
