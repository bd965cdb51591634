"""What falls out of a model's window, folded into a summary (`model.summarize`).

The span to fold may itself be longer than the model's context, so it is folded in parts: each
part, with the summary so far, stays under the request's `input_tokens`, and each part's answer
becomes the summary the next part is folded into. Messages are rendered as plain text (a tool
call and its result as lines, never as a pair a provider would check), tool outputs shortened
as the window shortens them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from durable_agent.wire import (
    AssistantMessage,
    Message,
    ModelRequest,
    ModelResponse,
    SummaryRequest,
    SummaryResponse,
    ToolMessage,
    Usage,
    UserMessage,
    clip,
    estimate_tokens,
)

Complete = Callable[[ModelRequest], Awaitable[ModelResponse]]


def render(message: Message, clip_chars: int) -> str:
    """One message as a line of the transcript the summariser reads."""
    if isinstance(message, AssistantMessage):
        lines = [f"assistant: {message.content}"] if message.content else []
        lines += [f"assistant called {c.name}({c.arguments}) [{c.id}]" for c in message.tool_calls]
        return "\n".join(lines)
    if isinstance(message, ToolMessage):
        shortened = clip(message, clip_chars)
        return f"tool result [{message.tool_call_id}]: {shortened.content}"
    return f"{message.role}: {message.content}"


def take(lines: list[str], start: int, room: int) -> tuple[list[str], int]:
    """The lines from `start` that fit in `room` estimated tokens (at least one, cut to fit if
    it alone is longer), and where the next part starts."""
    part: list[str] = []
    used, index = 0, start
    while index < len(lines):
        line = lines[index]
        cost = estimate_tokens(line)
        if cost > room and not part:
            line, cost = line[: max(1, room * 4 - 4)], room
        if part and used + cost > room:
            break
        part.append(line)
        used += cost
        index += 1
    return part, index


async def summarize(
    request: SummaryRequest, messages: list[Message], complete: Complete
) -> SummaryResponse:
    """Fold `messages` into `request.previous`, part by part, each call bounded."""
    lines = [line for m in messages if (line := render(m, request.clip_chars))]
    summary = request.previous or ""
    usage, calls = Usage(), 0
    fixed = estimate_tokens(request.instructions) + 64
    index = 0
    while index < len(lines):
        # The summary is bounded by its max_tokens; each part gets the room it leaves.
        room = max(64, request.input_tokens - fixed - estimate_tokens(summary))
        part, index = take(lines, index, room)
        heading = f"Previous summary:\n{summary}\n\n" if summary else ""
        prompt = f"{heading}Conversation to fold in:\n" + "\n".join(part)
        response = await complete(
            ModelRequest(
                model=request.model,
                instructions=request.instructions,
                messages=[UserMessage(content=prompt)],
                settings=request.settings,
            )
        )
        summary = response.message.content or summary
        usage, calls = usage + response.usage, calls + 1
    return SummaryResponse(summary=summary, usage=usage, calls=calls)
