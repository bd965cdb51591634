"""How the CLI prints a conversation: one line (or a few) per item."""

from __future__ import annotations

import json
import textwrap

from .wire import (
    AssistantMessage,
    Attachment,
    File,
    Item,
    StatusEvent,
    SystemMessage,
    ToolMessage,
    UserMessage,
)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _attached(attachments: list[Attachment]) -> str:
    """One line naming a message's images and files (never their bytes)."""
    if not attachments:
        return ""
    return f"\n{'':<10} + {', '.join(map(_attachment, attachments))}"


def _attachment(a: Attachment) -> str:
    filename = a.filename if isinstance(a, File) else None
    return f"{a.type} {filename or a.url or a.file_id or a.media_type}"


def render(item: Item) -> str:
    match item:
        case SystemMessage(content=content):
            return f"system     {_short(content)}"
        case UserMessage(content=content, name=name, attachments=attachments):
            who = f"user({name})" if name else "user"
            text = textwrap.fill(content, 100, subsequent_indent=" " * 11)
            return f"{who:<10} {text}{_attached(attachments)}"
        case AssistantMessage(content=content, tool_calls=calls, agent=agent):
            who = f"{agent or 'assistant'}"
            lines = [f"{who:<10} {content}"] if content else []
            lines += [f"{who:<10} -> {c.name}({_short(c.arguments, 120)})  [{c.id}]" for c in calls]
            return "\n".join(lines)
        case ToolMessage(tool_call_id=call_id, name=name, content=content, is_error=is_error):
            mark = "error" if is_error else "result"
            line = f"{'tool':<10} <- {name or '?'} {mark}: {_short(content, 160)}  [{call_id}]"
            return line + _attached(item.attachments)
        case StatusEvent(source=source, kind=kind, data=data):
            details = json.dumps(data, default=str, separators=(", ", "=")) if data else ""
            return f"  · {source}:{kind} {_short(details.strip('{}'), 160)}"
    raise TypeError(f"cannot render {type(item).__name__}")
