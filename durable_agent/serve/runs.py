"""The runs routes of `durable-agent serve` (`/runs`): start, list, read, answer, steer, cancel,
and the live stream. Every route is one `AgentClient` call (the events route reads through the
app's `Hub`), so the process holds no state of its own."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from .._causes import cause_message
from ..client import AgentClient
from ..wire import (
    AGENT_NAME,
    AGENT_STATUS,
    EVENT_SOURCES,
    AgentRunResult,
    EventSource,
    HistoryPage,
    PendingCall,
    RunState,
    SubmitResult,
    UserMessage,
    parse_cursor,
)
from .errors import rpc_error
from .hub import Hub
from .models import (
    Cancelling,
    Decision,
    ErrorBody,
    IdempotencyKey,
    Message,
    Resolution,
    RunInfo,
    RunSummary,
    Sent,
    Started,
    StartRun,
)
from .sse import sse_frames

__all__ = ["runs_router"]


def _client(request: Request) -> AgentClient:
    client: AgentClient = request.app.state.client
    return client


ClientDep = Annotated[AgentClient, Depends(_client)]


def _summary(run: WorkflowExecution) -> RunSummary:
    attributes = run.typed_search_attributes
    return RunSummary(
        workflow_id=run.id,
        run_id=run.run_id,
        agent=attributes.get(AGENT_NAME),
        status=_state(attributes.get(AGENT_STATUS)),
        execution_status=run.status.name.lower() if run.status else None,
        start_time=run.start_time,
        close_time=run.close_time,
    )


def _state(value: str | None) -> RunState | None:
    try:
        return RunState(value) if value else None
    except ValueError:  # a state a newer version wrote
        return None


def _sources(value: str) -> list[EventSource]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    if chosen == ["all"]:
        return list(EVENT_SOURCES)
    if unknown := [v for v in chosen if v not in EVENT_SOURCES]:
        raise HTTPException(422, f"query.events: unknown source(s) {unknown}; use {EVENT_SOURCES}")
    return chosen  # type: ignore[return-value]


async def _first_run(client: AgentClient, workflow_id: str) -> Started | None:
    """The run `workflow_id` started with, if there is one (within the namespace's retention)."""
    description = await client.find(workflow_id)
    if description is None:
        return None
    info = description.raw_description.workflow_execution_info
    return Started(workflow_id=workflow_id, run_id=info.first_run_id or description.run_id)


async def _wake_reader(request: Request, workflow_id: str) -> AsyncIterator[None]:
    """After a message or an answer: the run's hub reader reads now, not after its idle wait,
    so the turn it starts streams to the run's watchers from its first token."""
    yield
    hub: Hub = request.app.state.hub
    hub.wake(workflow_id)


WAKE = [Depends(_wake_reader)]


def _decide(approved: bool) -> Callable[..., Awaitable[SubmitResult]]:
    async def decide(
        workflow_id: str,
        tool_call_id: str,
        client: ClientDep,
        body: Decision | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> SubmitResult:
        body = body or Decision()
        return await client.decide(
            workflow_id,
            tool_call_id,
            approved,
            body.reason,
            digest=body.digest,
            update_id=idempotency_key,
        )

    return decide


router = APIRouter(
    prefix="/runs",
    tags=["runs"],
    responses={
        code: {"model": ErrorBody, "description": what}
        for code, what in [
            (401, "missing or wrong bearer token"),
            (404, "no run with this id"),
            (409, "refused by the run, or the run has ended"),
            (422, "malformed input"),
            (503, "Temporal is unreachable"),
            (504, "no worker answered in time"),
        ]
    },
)


@router.post("", response_model=Started | Sent, status_code=201)
async def start_run(
    body: StartRun,
    client: ClientDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Started | Sent:
    """Start a run (201). With `thread_id`, send the prompt to that conversation, starting
    it if none is open (200). With `Idempotency-Key`, a retry starts nothing new while the
    first run is open (its workflow id comes from the key)."""
    if body.thread_id is not None:
        response.status_code = 200
        sent = await client.send(
            body.agent,
            body.prompt,
            thread_id=body.thread_id,
            max_turns=body.max_turns,
            update_id=idempotency_key,
            attachments=body.attachments,
        )
        return Sent(workflow_id=sent.workflow_id, run_id=sent.run_id, detail=sent.detail)
    workflow_id = None
    if idempotency_key:
        workflow_id = f"{body.agent}-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]}"
        earlier = await _first_run(client, workflow_id)
        if earlier is not None:  # a retry, even of a run that has ended since
            response.status_code = 200
            return earlier
    try:
        # With attachments, the prompt is a user message that carries them.
        message = UserMessage(content=body.prompt, attachments=body.attachments)
        handle = await client.start(
            body.agent,
            None if body.attachments else body.prompt,
            messages=[message] if body.attachments else [],
            workflow_id=workflow_id,
            conversation=body.conversation,
            max_turns=body.max_turns,
        )
    except WorkflowAlreadyStartedError as exc:  # the same key, at the same time
        response.status_code = 200
        return Started(workflow_id=exc.workflow_id, run_id=exc.run_id or "")
    return Started(workflow_id=handle.id, run_id=handle.result_run_id or "")


@router.get("", response_model=list[RunSummary])
async def list_runs(
    client: ClientDep,
    status: RunState | None = None,
    agent: Annotated[str | None, Query(pattern=r"^[^'\"\\]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[RunSummary]:
    """Runs by their `AgentStatus` and agent, newest first (of the first `limit` the server
    lists: open runs, then the most recently closed)."""
    filters = [f"AgentStatus = '{status.value}'"] if status else []
    filters += [f"AgentName = '{agent}'"] if agent else []
    runs: list[RunSummary] = []
    async for run in client.list(" AND ".join(filters) or None):
        runs.append(_summary(run))
        if len(runs) >= limit:
            break
    return sorted(runs, key=lambda r: r.start_time, reverse=True)


@router.get("/{workflow_id:path}/pending", response_model=list[PendingCall])
async def pending(workflow_id: str, client: ClientDep) -> list[PendingCall]:
    """The calls waiting for an approval or a result (with each approval's digest)."""
    return await client.pending(workflow_id)


@router.get("/{workflow_id:path}/history", response_model=HistoryPage)
async def history(
    workflow_id: str,
    client: ClientDep,
    since: Annotated[int, Query(ge=0)] = 0,
    events: Annotated[str, Query(description="agent,llm,tool or all")] = "",
) -> HistoryPage:
    """One page of the conversation from `since`, with the chosen status events."""
    return await client.history(workflow_id, _sources(events), since)


@router.get("/{workflow_id:path}/result", response_model=AgentRunResult)
async def result(workflow_id: str, client: ClientDep) -> AgentRunResult:
    """The run's result once it has ended (409 while it runs or when it failed)."""
    description = await client.handle(workflow_id).describe()
    if description.status is WorkflowExecutionStatus.RUNNING:
        raise HTTPException(409, f"run {workflow_id} is still running")
    try:
        return await client.result(workflow_id)
    except WorkflowFailureError as exc:
        why = cause_message(exc)
        raise HTTPException(409, f"run {workflow_id} has no result: {why}") from None


@router.get("/{workflow_id:path}/events", response_class=StreamingResponse)
async def events(
    workflow_id: str,
    request: Request,
    client: ClientDep,
    after: str | None = None,
    deltas: bool = True,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The run's live stream as Server-Sent Events: `id:` is the event's cursor, `event:`
    its type (item, delta, state, end), `data:` its JSON. Resumes after `Last-Event-ID`
    (or `after`); ends after `end`. `deltas=false` leaves the model's streaming text out."""
    cursor = last_event_id or after
    try:
        parse_cursor(cursor)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    await client.handle(workflow_id).describe()  # an unknown run is a 404 here
    hub: Hub = request.app.state.hub
    return StreamingResponse(
        sse_frames(hub, workflow_id, cursor, deltas),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/{workflow_id:path}/messages", response_model=SubmitResult, dependencies=WAKE)
async def say(
    workflow_id: str, body: Message, client: ClientDep, idempotency_key: IdempotencyKey = None
) -> SubmitResult:
    """A user message, placed at the run's next safe point."""
    return await client.say(
        workflow_id,
        body.content,
        body.name,
        update_id=idempotency_key,
        attachments=body.attachments,
    )


@router.post("/{workflow_id:path}/interrupt", response_model=SubmitResult, dependencies=WAKE)
async def interrupt(
    workflow_id: str, body: Message, client: ClientDep, idempotency_key: IdempotencyKey = None
) -> SubmitResult:
    """A user message now: the model call in flight is cut off and the message answered."""
    return await client.interrupt(
        workflow_id,
        body.content,
        body.name,
        update_id=idempotency_key,
        attachments=body.attachments,
    )


@router.post("/{workflow_id:path}/cancel", response_model=Cancelling, status_code=202)
async def cancel(
    workflow_id: str, client: ClientDep, idempotency_key: IdempotencyKey = None
) -> Cancelling:
    """End the run: its result says `cancelled` and lists the calls still waiting. (Asking
    twice is harmless: the key is accepted for uniformity.)"""
    await client.cancel(workflow_id)
    return Cancelling(workflow_id=workflow_id, detail="cancel requested")


for verb in ("approve", "reject"):
    router.add_api_route(
        f"/{{workflow_id:path}}/calls/{{tool_call_id}}/{verb}",
        _decide(approved=verb == "approve"),
        methods=["POST"],
        response_model=SubmitResult,
        dependencies=WAKE,
        name=verb,
        summary=f"{verb.capitalize()} a call that waits for approval",
    )


@router.post(
    "/{workflow_id:path}/calls/{tool_call_id}/resolve",
    response_model=SubmitResult,
    dependencies=WAKE,
)
async def resolve(
    workflow_id: str,
    tool_call_id: str,
    body: Resolution,
    client: ClientDep,
    idempotency_key: IdempotencyKey = None,
) -> SubmitResult:
    """Give a waiting external or long-running call its result."""
    return await client.resolve(
        workflow_id,
        tool_call_id,
        body.content,
        is_error=body.is_error,
        update_id=idempotency_key,
        attachments=body.attachments,
    )


@router.get("/{workflow_id:path}", response_model=RunInfo)
async def run(workflow_id: str, client: ClientDep) -> RunInfo:
    """The run as Temporal describes it, and its `status` query (`state`)."""
    description = await client.handle(workflow_id).describe()
    state, state_error = None, None
    try:
        state = await client.status(workflow_id)
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise
        state_error = rpc_error(exc, workflow_id)[1]
    summary = _summary(description)
    return RunInfo(
        **summary.model_dump(),
        task_queue=description.task_queue,
        state=state,
        state_error=state_error,
    )


def runs_router() -> APIRouter:
    """Runs: start, list, read, answer, steer, cancel, and the live stream."""
    return router
