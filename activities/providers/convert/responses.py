"""OpenAI Responses `input` items and `tools`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from durable_agent.wire import (
    AssistantMessage,
    Attachment,
    Item,
    Message,
    SystemMessage,
    ToolCall,
    ToolSpec,
    UserMessage,
    prompt_messages,
)

from ._attachments import from_responses_part, responses_part
from ._common import Wire, error_text, text_of, tool_message


def to_openai_responses(items: Iterable[Item], instructions: str | None = None) -> list[Wire]:
    """`input` items. Instructions go in the request's own `instructions` field, but may be
    given here to get them as a leading system item."""
    out: list[Wire] = [{"role": "system", "content": instructions}] if instructions else []
    for m in prompt_messages(list(items)):
        if isinstance(m, SystemMessage):
            out.append({"role": m.role, "content": m.content})
        elif isinstance(m, UserMessage):
            out.append({"role": m.role, "content": _content(m.content, m.attachments)})
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
                    "output": _content(error_text(m), m.attachments),
                }
            )
    return out


def _content(text: str, attachments: list[Attachment]) -> str | list[Wire]:
    """Plain text stays a string; attachments make it a list of input parts, the text first."""
    if not attachments:
        return text
    parts: list[Wire] = [{"type": "input_text", "text": text}] if text else []
    return parts + [responses_part(a) for a in attachments]


def _attachments(content: Any) -> list[Attachment]:
    parts = [] if isinstance(content, str) else list(content or [])
    return [a for a in map(from_responses_part, parts) if a is not None]


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
            output = wire.get("output")
            result = tool_message(wire["call_id"], text_of(output), names)
            result.attachments = _attachments(output)
            out.append(result)
        elif kind == "message":
            role, content = wire.get("role"), text_of(wire.get("content"))
            attachments = _attachments(wire.get("content"))
            if role in ("system", "developer"):
                out.append(SystemMessage(content=content))
            elif role == "user":
                out.append(UserMessage(content=content, attachments=attachments))
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
