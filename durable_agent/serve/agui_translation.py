"""The AG-UI translation of a run's live stream: one AG-UI run (a turn of the conversation)
as AG-UI events, and a waiting call as an interrupt with the answer it takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ag_ui.core import (
    BaseEvent,
    ContentPart,
    Interrupt,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from pydantic import BaseModel, ConfigDict, Field

from .._follow import kind_of
from ..wire import (
    AssistantMessage,
    LiveEvent,
    ModelDelta,
    PendingCall,
    StatusEvent,
    ToolMessage,
    UserMessage,
)

__all__ = ["ApprovalAnswer", "ResultAnswer", "Translation", "interrupt_of"]


class ApprovalAnswer(BaseModel):
    """The resume payload of an approval interrupt."""

    model_config = ConfigDict(extra="forbid")
    approved: bool
    reason: str | None = None
    digest: str | None = None


class ResultAnswer(BaseModel):
    """The resume payload of any other interrupt: the waiting call's result, with images and
    documents as AG-UI content parts (text parts are not read: `content` is the result)."""

    model_config = ConfigDict(extra="forbid")
    content: Any
    is_error: bool = False
    attachments: list[ContentPart] = Field(default_factory=list)


@cache
def _schema(answer: type[BaseModel]) -> dict[str, Any]:
    """Built once: every interrupt event carries it."""
    return answer.model_json_schema()


def interrupt_of(call: PendingCall) -> Interrupt:
    """One waiting call as an AG-UI interrupt, answered by a resume entry with its id."""
    shown = f"{call.name}({call.arguments})"
    answer: type[BaseModel] = ApprovalAnswer if call.kind == "approval" else ResultAnswer
    message = f"Approve {shown}?" if call.kind == "approval" else f"{shown} waits for its result."
    return Interrupt(
        id=call.tool_call_id,
        reason=call.kind,
        message=message,
        tool_call_id=call.tool_call_id,
        response_schema=_schema(answer),
        expires_at=call.deadline.isoformat() if call.deadline else None,
        metadata=call.model_dump(mode="json", exclude_none=True),
    )


@dataclass
class Translation:
    """The live stream of one AG-UI run, as AG-UI events. `awaited` is the user's message the
    run answers: nothing before it is this run's (None: everything is, as after a resume)."""

    run_id: str
    awaited: str | None
    started: bool = False
    turn: int = 0
    text_id: str | None = None
    """The message the model's text streams into (its turn and attempt)."""
    text_open: bool = False
    text: str = ""
    tokens: dict[str, tuple[int, int]] = field(default_factory=dict)
    stop_reason: str | None = None
    """Why the run's budget stopped it (its `budget_exceeded` event)."""
    output: Any = None
    """The turn's typed answer, for an agent with an `output_type` (its `output_valid` event):
    `RUN_FINISHED`'s `result`."""

    def __post_init__(self) -> None:
        self.started = self.awaited is None

    def feed(self, event: LiveEvent) -> list[BaseEvent]:
        if event.delta is not None and self.started:
            return self._delta(event.delta)
        item = event.item
        if isinstance(item, UserMessage | ToolMessage) and not self.started:
            self.started = item.content == self.awaited
            return []
        if not self.started:
            return []
        if isinstance(item, StatusEvent):
            return self._status(item)
        if isinstance(item, AssistantMessage):
            return self._assistant(item)
        if isinstance(item, ToolMessage):
            return [
                ToolCallResultEvent(
                    message_id=f"{self.run_id}-result-{item.tool_call_id}",
                    tool_call_id=item.tool_call_id,
                    content=item.content,
                    role="tool",
                )
            ]
        if isinstance(item, UserMessage):  # someone else spoke in this thread meanwhile
            message_id = f"{self.run_id}-user-{event.id}"
            return [
                TextMessageStartEvent(message_id=message_id, role="user", name=item.name),
                TextMessageContentEvent(message_id=message_id, delta=item.content),
                TextMessageEndEvent(message_id=message_id),
            ]
        return []

    def _delta(self, delta: ModelDelta) -> list[BaseEvent]:
        if delta.kind == "superseded":  # a retried call: its earlier text stays a message
            return self._drop_text()
        if delta.kind != "text" or not delta.text:
            return []  # tool calls are shown whole when the message lands
        message_id = f"{self.run_id}-{delta.turn}.{delta.attempt}"
        out: list[BaseEvent] = []
        if self.text_id != message_id:
            out += self.close()
            self.text_id, self.text = message_id, ""
        if not self.text_open:
            out.append(TextMessageStartEvent(message_id=message_id, role="assistant"))
            self.text_open = True
        self.text += delta.text
        out.append(TextMessageContentEvent(message_id=message_id, delta=delta.text))
        return out

    def _status(self, item: StatusEvent) -> list[BaseEvent]:
        kind = kind_of(item)
        if kind == "turn_started":
            self.turn = int(item.data.get("turn", self.turn + 1))
        elif kind == "model_called":
            model = str(item.data.get("model") or "")
            before = self.tokens.get(model, (0, 0))
            self.tokens[model] = (
                before[0] + int(item.data.get("input_tokens", 0)),
                before[1] + int(item.data.get("output_tokens", 0)),
            )
        elif kind == "output_valid":
            self.output = item.data.get("output")
        elif kind in ("budget_exceeded", "guardrail_tripped"):
            self.stop_reason = str(item.data.get("reason") or "") or None
        elif kind == "interrupted":  # the call was cut off: what it said stays as it was
            return self._drop_text()
        return []

    def _assistant(self, message: AssistantMessage) -> list[BaseEvent]:
        """The turn's message: the rest of its text (or all of it), then its tool calls."""
        content = message.content or ""
        out: list[BaseEvent] = []
        message_id = self.text_id
        if message_id is not None and self.text and content.startswith(self.text):
            rest = content[len(self.text) :]
            if rest:
                if not self.text_open:
                    out.append(TextMessageStartEvent(message_id=message_id, role="assistant"))
                    self.text_open = True
                out.append(TextMessageContentEvent(message_id=message_id, delta=rest))
            out += self.close()
        else:
            out += self.close()
            message_id = f"{self.run_id}-{self.turn}"
            if content:
                out += [
                    TextMessageStartEvent(message_id=message_id, role="assistant"),
                    TextMessageContentEvent(message_id=message_id, delta=content),
                    TextMessageEndEvent(message_id=message_id),
                ]
        self.text_id, self.text = None, ""
        for call in message.tool_calls:
            out.append(
                ToolCallStartEvent(
                    tool_call_id=call.id, tool_call_name=call.name, parent_message_id=message_id
                )
            )
            if call.arguments:
                out.append(ToolCallArgsEvent(tool_call_id=call.id, delta=call.arguments))
            out.append(ToolCallEndEvent(tool_call_id=call.id))
        return out

    def _drop_text(self) -> list[BaseEvent]:
        """End the streaming message; what streams next starts another one."""
        out = self.close()
        self.text_id, self.text = None, ""
        return out

    def close(self) -> list[BaseEvent]:
        """End the message that is streaming, if one is: nothing stays open at the end."""
        if not self.text_open or self.text_id is None:
            return []
        self.text_open = False
        return [TextMessageEndEvent(message_id=self.text_id)]

    def usage(self) -> list[TokenUsage] | None:
        """Tokens of the model calls this run made, one entry a model."""
        return [
            TokenUsage(
                model=model or None,
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                total_tokens=sum(tokens),
            )
            for model, tokens in self.tokens.items()
        ] or None

    def finished(
        self,
        thread: str,
        outcome: RunFinishedInterruptOutcome | RunFinishedCancelledOutcome | None,
    ) -> RunFinishedEvent:
        """`result`: the typed answer of a turn that ended with one."""
        return RunFinishedEvent(
            thread_id=thread,
            run_id=self.run_id,
            outcome=outcome,
            usage=self.usage(),
            result=self.output if outcome is None else None,
        )
