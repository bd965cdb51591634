"""AG-UI over durable conversations: `POST /agents/{agent}/agui`.

An AG-UI thread is one durable conversation run (workflow id = `threadId`); each AG-UI run is
one turn of it. The request's last user message is sent with update-with-start
(`AgentClient.send`, its update id made of `threadId` and `runId`, so a retried request adds
it once), then the run's live stream (read through the app's `Hub`, from where it stood before
the message) is translated into AG-UI events until the turn ends:

- the model's text deltas become `TEXT_MESSAGE_START/CONTENT/END` (the whole message when no
  deltas were seen, and the rest of it when the last deltas were not);
- its tool calls become `TOOL_CALL_START/ARGS/END` when its message lands, and tool messages
  `TOOL_CALL_RESULT`;
- waiting for the user again ends with `RUN_FINISHED` (success, with the turn's token `usage`),
  the run ending on purpose with the cancelled outcome, a failure with `RUN_ERROR` (`code` is
  the failure's type, e.g. `UnknownAgent`);
- calls that wait for someone outside the run (approvals, external and long-running tools,
  handoffs to a person) end it with the interrupt outcome: one `Interrupt` per waiting call,
  `id` = `toolCallId`, `reason` = the call's kind. The next request on the thread answers them
  in `resume` (or, for clients from before AG-UI 1.0, `forwardedProps.resume`) and sends no
  message. Payloads: an approval takes `{"approved": bool, "reason"?: str, "digest"?: str}`
  (the digest from the interrupt's `metadata` binds the decision to the arguments shown); the
  others take `{"content": <any JSON>, "is_error"?: bool}`. A `cancelled` entry rejects an
  approval and leaves any other call waiting for its result from elsewhere.

The durable run holds the conversation, so only the last message of `messages` is read; the
agent's own tools run on the worker, and `tools` (frontend tools), `state` and `context` are
not used. Input that is wrong is an HTTP error before any event, as the rest of the API
answers them: 422 (no user message last, a payload of the wrong shape), 404 (resume on an
unknown thread), 409 (a refused decision, e.g. a stale digest). The translation never holds
the run: it reads the `live` query, so a dropped client leaves the conversation as it is, and
the next request picks it up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    Interrupt,
    ResumeEntry,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.core import UserMessage as AguiUserMessage
from ag_ui.encoder import EventEncoder
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from .._causes import cause_message, cause_type
from .._follow import CLOSED_POLL_SECONDS, stream_end
from ..client import AgentClient
from ..wire import (
    AssistantMessage,
    LiveEvent,
    LiveQuery,
    ModelDelta,
    PendingCall,
    RunState,
    StatusEvent,
    ToolMessage,
    UserMessage,
    parse_cursor,
)
from .hub import Hub
from .sse import KEEPALIVE_SECONDS

__all__ = ["agui_router"]

log = logging.getLogger(__name__)

_WAITING_OUTSIDE = (RunState.WAITING_FOR_APPROVAL, RunState.WAITING_FOR_TOOLS)
_ENDED = (RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED)


class ApprovalAnswer(BaseModel):
    """The resume payload of an approval interrupt."""

    model_config = ConfigDict(extra="forbid")
    approved: bool
    reason: str | None = None
    digest: str | None = None


class ResultAnswer(BaseModel):
    """The resume payload of any other interrupt: the waiting call's result."""

    model_config = ConfigDict(extra="forbid")
    content: Any
    is_error: bool = False


_Answer = TypeVar("_Answer", ApprovalAnswer, ResultAnswer)
_RESUME = TypeAdapter(list[ResumeEntry])


def agui_router() -> APIRouter:
    """`POST /agents/{agent}/agui`; reads `app.state.client` and `app.state.hub`."""
    router = APIRouter(tags=["AG-UI"])

    @router.post("/agents/{agent}/agui", response_class=StreamingResponse)
    async def run_agent(agent: str, body: RunAgentInput, request: Request) -> StreamingResponse:
        """Run one turn of the conversation `threadId` and stream it as AG-UI events."""
        client: AgentClient = request.app.state.client
        hub: Hub = request.app.state.hub
        encoder = EventEncoder(accept=request.headers.get("accept", ""))
        events = await _start_turn(client, hub, agent, body)

        async def encoded() -> AsyncIterator[str]:
            async for event in events:
                yield ": keep-alive\n\n" if event is None else encoder.encode(event)

        return StreamingResponse(
            encoded(),
            media_type=encoder.get_content_type(),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


async def _start_turn(
    client: AgentClient, hub: Hub, agent: str, body: RunAgentInput
) -> AsyncIterator[BaseEvent | None]:
    """Send the message or apply the answers, then return the turn's event stream. What the
    input gets wrong is an HTTP error here, before any event: the run never started."""
    thread = body.thread_id
    entries = _resume_entries(body)
    try:
        after = await stream_end(client, thread)  # the turn shows what follows
        if entries:
            await _apply_answers(client, thread, entries, body.run_id)
            awaited = None
        else:
            awaited, name = _last_user_message(body)
            await client.send(
                agent,
                awaited,
                thread_id=thread,
                name=name,
                update_id=f"agui:{thread}:{body.run_id}",
            )
    except WorkflowUpdateFailedError as exc:
        raise HTTPException(409, f"refused: {exc.cause or exc}") from None
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no conversation with thread id {thread}") from None
        raise HTTPException(503, f"Temporal: {exc.message}") from None
    return _turn_events(client, hub, body, after, awaited)


def _resume_entries(body: RunAgentInput) -> list[ResumeEntry]:
    if body.resume:
        return list(body.resume)
    props = body.forwarded_props
    if isinstance(props, dict) and "resume" in props:
        try:
            return _RESUME.validate_python(props["resume"])
        except ValidationError as exc:
            raise HTTPException(422, f"forwardedProps.resume: {exc}") from None
    return []


def _last_user_message(body: RunAgentInput) -> tuple[str, str | None]:
    """The text and name of the message this turn answers."""
    last = body.messages[-1] if body.messages else None
    if not isinstance(last, AguiUserMessage):
        raise HTTPException(422, "the last message must be the user's (or give 'resume')")
    if isinstance(last.content, str):
        text = last.content
    else:
        text = "\n".join(p.text for p in last.content if p.type == "text")
    if not text.strip():
        raise HTTPException(422, "the user's message has no text")
    return text, last.name


async def _apply_answers(
    client: AgentClient, thread: str, entries: list[ResumeEntry], run_id: str
) -> None:
    """Each resume entry answers the waiting call its `interruptId` names. An entry for a call
    that no longer waits is skipped with a warning, as the spec asks of unrecognised entries."""
    waiting = {p.tool_call_id: p for p in await client.pending(thread)}
    for entry in entries:
        call = waiting.get(entry.interrupt_id)
        if call is None:
            log.warning("AG-UI resume: no waiting call %r in %s", entry.interrupt_id, thread)
            continue
        update_id = f"agui:{thread}:{run_id}:{call.tool_call_id}"
        if call.kind == "approval":
            if entry.status == "cancelled":
                answer = ApprovalAnswer(approved=False, reason="cancelled by the user")
            else:
                answer = _payload(ApprovalAnswer, entry)
            await client.decide(
                thread,
                call.tool_call_id,
                answer.approved,
                answer.reason,
                digest=answer.digest,
                update_id=update_id,
            )
        elif entry.status == "resolved":
            result = _payload(ResultAnswer, entry)
            await client.resolve(
                thread,
                call.tool_call_id,
                result.content,
                is_error=result.is_error,
                update_id=update_id,
            )


def _payload(shape: type[_Answer], entry: ResumeEntry) -> _Answer:
    try:
        return shape.model_validate(entry.payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise HTTPException(
            422, f"resume entry {entry.interrupt_id!r}: payload {problems or exc}"
        ) from None


async def _turn_events(
    client: AgentClient, hub: Hub, body: RunAgentInput, after: str | None, awaited: str | None
) -> AsyncIterator[BaseEvent | None]:
    """The AG-UI run, read through the app's `Hub`; None is a keep-alive."""
    thread, run_id = body.thread_id, body.run_id
    yield RunStartedEvent(thread_id=thread, run_id=run_id, protocol_version=PROTOCOL_VERSION)
    turn = Translation(run_id, awaited)
    silent = 0.0
    try:
        async with hub.subscribe(thread, after) as subscription:
            while True:
                batch = await subscription.next_batch(CLOSED_POLL_SECONDS)
                if batch:
                    silent = 0.0
                    for event in batch:
                        for out in turn.feed(event):
                            yield out
                    state = await _settled(client, thread, turn, batch[-1])
                else:
                    silent += CLOSED_POLL_SECONDS
                    state = await _closed_state(client, thread)
                    if state is None and subscription.done:
                        break
                    if state is None and silent >= KEEPALIVE_SECONDS:
                        silent = 0.0
                        yield None
                if state is not None:
                    ending = await _ending(client, thread, turn, state)
                    for out in ending:
                        yield out
                    if ending:
                        return
        yield RunErrorEvent(message="the run's stream ended before the turn did")
    except Exception as exc:  # the stream is open: a failure travels in it
        log.warning("AG-UI run %s of %s failed: %s", run_id, thread, exc)
        yield RunErrorEvent(message=f"{type(exc).__name__}: {exc}")


async def _settled(
    client: AgentClient, thread: str, turn: Translation, last: LiveEvent
) -> RunState | None:
    """The run's state if it may end the AG-UI run and nothing after `last` is left to show;
    None while the turn goes on. `state` events alone cannot tell: a whole turn can pass
    between two reads of the stream (the reader of an idle run reads once a second), leaving
    the state as it was; and what one read saw may reach this subscriber in several batches.
    So a state that could end the turn is checked by reading on from `last`."""
    state = last.state
    could_end = state in (*_WAITING_OUTSIDE, *_ENDED) or (
        state is RunState.WAITING_FOR_USER and turn.started
    )
    if not could_end:
        return None
    items, deltas = parse_cursor(last.id)
    page = await client.live(thread, LiveQuery(items=items, deltas=deltas))
    return None if page.items else page.state


async def _closed_state(client: AgentClient, thread: str) -> RunState | None:
    """How the run closed, if it has: a run that fails before it records a state (an unknown
    agent, a malformed input) leaves its live stream saying `running`."""
    status = (await client.handle(thread).describe()).status
    if status is None or status is WorkflowExecutionStatus.RUNNING:
        return None
    if status is WorkflowExecutionStatus.COMPLETED:
        return RunState.COMPLETED
    if status is WorkflowExecutionStatus.CANCELED:
        return RunState.CANCELLED
    return RunState.FAILED


async def _ending(
    client: AgentClient, thread: str, turn: Translation, state: RunState
) -> list[BaseEvent]:
    """The events that end the AG-UI run in `state`, or none when it goes on."""
    if state in _WAITING_OUTSIDE:
        interrupts = [_interrupt(p) for p in await client.pending(thread)]
        if not interrupts:
            return []  # answered meanwhile: the run goes on
        outcome = RunFinishedInterruptOutcome(interrupts=interrupts)
        return [*turn.close(), turn.finished(thread, outcome)]
    if state is RunState.WAITING_FOR_USER and turn.started:
        return [*turn.close(), turn.finished(thread, None)]
    if state is RunState.FAILED:
        message, code = await _failure(client, thread)
        return [*turn.close(), RunErrorEvent(message=message, code=code, usage=turn.usage())]
    if state is RunState.CANCELLED:
        return [*turn.close(), turn.finished(thread, RunFinishedCancelledOutcome())]
    if state is RunState.COMPLETED:
        return [*turn.close(), turn.finished(thread, None)]
    return []


def _interrupt(call: PendingCall) -> Interrupt:
    """One waiting call as an AG-UI interrupt, answered by a resume entry with its id."""
    shown = f"{call.name}({call.arguments})"
    answer: type[BaseModel] = ApprovalAnswer if call.kind == "approval" else ResultAnswer
    message = f"Approve {shown}?" if call.kind == "approval" else f"{shown} waits for its result."
    return Interrupt(
        id=call.tool_call_id,
        reason=call.kind,
        message=message,
        tool_call_id=call.tool_call_id,
        response_schema=answer.model_json_schema(),
        expires_at=call.deadline.isoformat() if call.deadline else None,
        metadata=call.model_dump(mode="json", exclude_none=True),
    )


async def _failure(client: AgentClient, thread: str) -> tuple[str, str | None]:
    """Why the run failed, from its result: the innermost cause's message and type."""
    try:
        await client.result(thread)
    except WorkflowFailureError as exc:
        return f"the run failed: {cause_message(exc)}", cause_type(exc)
    return "the run failed", None


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
        if item.kind == "turn_started":
            self.turn = int(item.data.get("turn", self.turn + 1))
        elif item.kind == "model_called":
            model = str(item.data.get("model") or "")
            before = self.tokens.get(model, (0, 0))
            self.tokens[model] = (
                before[0] + int(item.data.get("input_tokens", 0)),
                before[1] + int(item.data.get("output_tokens", 0)),
            )
        elif item.kind == "interrupted":  # the call was cut off: what it said stays as it was
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
        return RunFinishedEvent(
            thread_id=thread, run_id=self.run_id, outcome=outcome, usage=self.usage()
        )
