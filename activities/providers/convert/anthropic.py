"""Anthropic Messages `system`, `messages` and `tools`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, overload

from durable_agent.wire import (
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

from ._attachments import anthropic_block, from_anthropic_block
from ._common import Wire, arguments_object, arguments_text, text_of


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
            # An empty text block is refused: a message of attachments only has none.
            if m.content or not m.attachments:
                user_blocks().append({"type": "text", "text": m.content})
            user_blocks().extend(anthropic_block(a) for a in m.attachments)
        elif isinstance(m, ToolMessage):
            result: str | list[Wire] = m.content
            if m.attachments:
                text = [{"type": "text", "text": m.content}] if m.content else []
                result = text + [anthropic_block(a) for a in m.attachments]
            block: Wire = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": result}
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
                    "input": arguments_object(c.arguments),
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
                ToolCall(id=b["id"], name=b["name"], arguments=arguments_text(b.get("input", {})))
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            names.update((c.id, c.name) for c in calls)
            out.append(AssistantMessage(content=text or None, tool_calls=calls))
        elif role == "user":
            user: UserMessage | None = None  # the turn's latest text, which attachments follow
            for b in blocks:
                attachment = from_anthropic_block(b)
                if b.get("type") == "tool_result":
                    user = None
                    result = b.get("content")
                    parts = [] if isinstance(result, str) else list(result or [])
                    out.append(
                        ToolMessage(
                            tool_call_id=b["tool_use_id"],
                            name=names.get(b["tool_use_id"]),
                            content=text_of(result),
                            is_error=bool(b.get("is_error", False)),
                            attachments=[a for a in map(from_anthropic_block, parts) if a],
                        )
                    )
                elif b.get("type") == "text":
                    user = UserMessage(content=b["text"])
                    out.append(user)
                elif attachment is not None:
                    if user is None:
                        user = UserMessage(content="")
                        out.append(user)
                    user.attachments.append(attachment)
        else:
            raise ValueError(f"unknown Anthropic role {role!r}")
    return out


def anthropic_tools(tools: Iterable[ToolSpec]) -> list[Wire]:
    return [
        {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
    ]
