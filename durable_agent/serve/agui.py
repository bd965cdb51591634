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
- waiting for the user again ends with `RUN_FINISHED` (success, with the turn's token `usage`,
  and for an agent with an `output_type` its typed answer in `result`),
  the run ending on purpose with the cancelled outcome, a failure with `RUN_ERROR` (`code` is
  the failure's type, e.g. `UnknownAgent`), a run its budget stopped with `RUN_ERROR` (`code`
  `BudgetExceeded`, the budget's reason in `message`), as soon as the run's state says so;
- calls that wait for someone outside the run (approvals, external and long-running tools,
  handoffs to a person) end it with the interrupt outcome: one `Interrupt` per waiting call,
  `id` = `toolCallId`, `reason` = the call's kind. The next request on the thread answers them
  in `resume` (or, for clients from before AG-UI 1.0, `forwardedProps.resume`) and sends no
  message. Payloads: an approval takes `{"approved": bool, "reason"?: str, "digest"?: str}`
  (the digest from the interrupt's `metadata` binds the decision to the arguments shown); the
  others take `{"content": <any JSON>, "is_error"?: bool, "attachments"?: [part]}`. A
  `cancelled` entry rejects an approval and leaves any other call waiting for its result from
  elsewhere.

A message's (and a result payload's `attachments`) image and document parts become the run's
attachments (`agui_parts`). The durable run holds the conversation, so only the last message
of `messages` is read; the agent's own tools run on the worker, and `tools` (frontend tools),
`state` and `context` are not used. Input that is wrong is an HTTP error before any event, as
the rest of the API answers them: 422 (no user message last, a payload of the wrong shape, a
part we cannot carry), 404 (resume on an unknown thread), 409 (a refused decision, e.g. a
stale digest). The translation never holds the run: it reads the `live` query, so a dropped
client leaves the conversation as it is, and the next request picks it up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TypeVar, assert_never

from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    ResumeEntry,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedInterruptOutcome,
    RunStartedEvent,
)
from ag_ui.core import UserMessage as AguiUserMessage
from ag_ui.encoder import EventEncoder
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter, ValidationError
from temporalio.client import (
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from .._causes import cause_message, cause_type
from .._follow import CLOSED_POLL_SECONDS, closed_state, stream_end
from ..client import AgentClient
from ..wire import (
    ENDED,
    Attachment,
    LiveEvent,
    LiveQuery,
    PendingCall,
    RunState,
    parse_cursor,
)
from .agui_parts import attachments_of, text_of
from .agui_translation import ApprovalAnswer, ResultAnswer, Translation, interrupt_of
from .hub import Hub
from .sse import KEEPALIVE_SECONDS

__all__ = ["agui_router"]

log = logging.getLogger(__name__)

_WAITING_OUTSIDE = frozenset({RunState.WAITING_FOR_APPROVAL, RunState.WAITING_FOR_TOOLS})
"""Waiting for someone outside the run: the AG-UI run ends with one interrupt a call."""


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
            awaited, name, attachments = _last_user_message(body)
            await client.send(
                agent,
                awaited,
                thread_id=thread,
                name=name,
                update_id=f"agui:{thread}:{body.run_id}",
                attachments=attachments,
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


def _last_user_message(body: RunAgentInput) -> tuple[str, str | None, list[Attachment]]:
    """The text, name and attachments (its image and document parts) of the message this
    turn answers."""
    last = body.messages[-1] if body.messages else None
    if not isinstance(last, AguiUserMessage):
        raise HTTPException(422, "the last message must be the user's (or give 'resume')")
    if isinstance(last.content, str):
        text, attachments = last.content, []
    else:
        where = f"messages[{len(body.messages) - 1}].content"
        text, attachments = text_of(last.content), attachments_of(last.content, where)
    if not text.strip() and not attachments:
        raise HTTPException(422, "the user's message has no text and no attachments")
    return text, last.name, attachments


async def _apply_answers(
    client: AgentClient, thread: str, entries: list[ResumeEntry], run_id: str
) -> None:
    """Each resume entry answers the waiting call its `interruptId` names. An entry for a call
    that no longer waits is skipped with a warning, as the spec asks of unrecognised entries.
    Every payload is checked before any is applied, so a wrong one changes nothing."""
    waiting = {p.tool_call_id: p for p in await client.pending(thread)}
    answers: list[tuple[PendingCall, ApprovalAnswer | ResultAnswer, list[Attachment]]] = []
    for entry in entries:
        call = waiting.get(entry.interrupt_id)
        if call is None:
            log.warning("AG-UI resume: no waiting call %r in %s", entry.interrupt_id, thread)
        elif call.kind == "approval":
            if entry.status == "cancelled":
                decided = ApprovalAnswer(approved=False, reason="cancelled by the user")
            else:
                decided = _payload(ApprovalAnswer, entry)
            answers.append((call, decided, []))
        elif entry.status == "resolved":
            result = _payload(ResultAnswer, entry)
            where = f"resume entry {entry.interrupt_id!r}: payload.attachments"
            answers.append((call, result, attachments_of(result.attachments, where)))
    for call, answer, attachments in answers:
        update_id = f"agui:{thread}:{run_id}:{call.tool_call_id}"
        if isinstance(answer, ApprovalAnswer):
            await client.decide(
                thread,
                call.tool_call_id,
                answer.approved,
                answer.reason,
                digest=answer.digest,
                update_id=update_id,
            )
        else:
            await client.resolve(
                thread,
                call.tool_call_id,
                answer.content,
                is_error=answer.is_error,
                update_id=update_id,
                attachments=attachments,
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
                    state = await closed_state(client, thread)
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
    could_end = state in _WAITING_OUTSIDE | ENDED or (
        state is RunState.WAITING_FOR_USER and turn.started
    )
    if not could_end:
        return None
    items, deltas = parse_cursor(last.id)
    page = await client.live(thread, LiveQuery(items=items, deltas=deltas))
    return None if page.items else page.state


async def _ending(
    client: AgentClient, thread: str, turn: Translation, state: RunState
) -> list[BaseEvent]:
    """The events that end the AG-UI run in `state`, or none when it goes on."""
    match state:
        case RunState.WAITING_FOR_APPROVAL | RunState.WAITING_FOR_TOOLS:
            interrupts = [interrupt_of(p) for p in await client.pending(thread)]
            if not interrupts:
                return []  # answered meanwhile: the run goes on
            outcome = RunFinishedInterruptOutcome(interrupts=interrupts)
            return [*turn.close(), turn.finished(thread, outcome)]
        case RunState.WAITING_FOR_USER:
            return [*turn.close(), turn.finished(thread, None)] if turn.started else []
        case RunState.RUNNING:
            return []
        case RunState.COMPLETED:
            return [*turn.close(), turn.finished(thread, None)]
        case RunState.CANCELLED:
            return [*turn.close(), turn.finished(thread, RunFinishedCancelledOutcome())]
        case RunState.FAILED:
            message, code = await _failure(client, thread)
            return [*turn.close(), RunErrorEvent(message=message, code=code, usage=turn.usage())]
        case RunState.BUDGET_EXCEEDED:
            why = turn.stop_reason or "its budget is spent"
            stopped = RunErrorEvent(
                message=f"the run stopped: {why}", code="BudgetExceeded", usage=turn.usage()
            )
            return [*turn.close(), stopped]
        case RunState.GUARDRAIL_TRIPPED:
            why = turn.stop_reason or "a guardrail tripped"
            tripped = RunErrorEvent(
                message=f"the run stopped: {why}", code="GuardrailTripped", usage=turn.usage()
            )
            return [*turn.close(), tripped]
        case _:
            assert_never(state)


async def _failure(client: AgentClient, thread: str) -> tuple[str, str | None]:
    """Why the run failed, from its result: the innermost cause's message and type."""
    try:
        await client.result(thread)
    except WorkflowFailureError as exc:
        return f"the run failed: {cause_message(exc)}", cause_type(exc)
    return "the run failed", None
