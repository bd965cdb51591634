"""OpenAI Chat Completions `messages` and `tools`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from durable_agent.wire import (
    AssistantMessage,
    Item,
    Message,
    SystemMessage,
    ToolCall,
    ToolSpec,
    UserMessage,
    prompt_messages,
)

from ._common import Wire, error_text, text_of, tool_message


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
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": error_text(m)})
    return out


def from_openai_chat(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    out: list[Message] = []
    names: dict[str, str] = {}
    for wire in messages:
        role = wire.get("role")
        if role in ("system", "developer"):
            out.append(SystemMessage(content=text_of(wire.get("content"))))
        elif role == "user":
            out.append(UserMessage(content=text_of(wire.get("content")), name=wire.get("name")))
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
            content = text_of(wire.get("content")) or None
            out.append(AssistantMessage(content=content, tool_calls=calls))
        elif role == "tool":
            out.append(tool_message(wire["tool_call_id"], text_of(wire.get("content")), names))
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
