"""OpenAI Responses `input` items and `tools`."""

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
                    "output": error_text(m),
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
            out.append(tool_message(wire["call_id"], text_of(wire.get("output")), names))
        elif kind == "message":
            role, content = wire.get("role"), text_of(wire.get("content"))
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
