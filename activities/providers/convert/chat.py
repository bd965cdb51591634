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

from ._attachments import UnsupportedContent, chat_part, from_chat_part
from ._common import Wire, error_text, text_of, tool_message


def to_openai_chat(items: Iterable[Item], instructions: str | None = None) -> list[Wire]:
    out: list[Wire] = [{"role": "system", "content": instructions}] if instructions else []
    for m in prompt_messages(list(items)):
        if isinstance(m, SystemMessage):
            out.append({"role": m.role, "content": m.content})
        elif isinstance(m, UserMessage):
            out.append({"role": m.role, "content": _user_content(m)})
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
            if m.attachments:
                raise UnsupportedContent(
                    f"Chat Completions tool results carry text only: the result of {m.name!r} "
                    "holds an image or a file (use the Responses API, openai:, or Anthropic)"
                )
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": error_text(m)})
    return out


def _user_content(m: UserMessage) -> str | list[Wire]:
    """Plain text stays a string (as every compatible server takes it); attachments make it
    a list of parts, the text first."""
    if not m.attachments:
        return m.content
    text: list[Wire] = [{"type": "text", "text": m.content}] if m.content else []
    return text + [chat_part(a) for a in m.attachments]


def from_openai_chat(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    out: list[Message] = []
    names: dict[str, str] = {}
    for wire in messages:
        role = wire.get("role")
        if role in ("system", "developer"):
            out.append(SystemMessage(content=text_of(wire.get("content"))))
        elif role == "user":
            content = wire.get("content")
            parts = [] if isinstance(content, str) else list(content or [])
            found = [a for a in map(from_chat_part, parts) if a is not None]
            name = wire.get("name")
            out.append(UserMessage(content=text_of(content), name=name, attachments=found))
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
