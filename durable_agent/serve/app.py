"""`durable-agent serve`: runs over HTTP, each run's live stream as Server-Sent Events.

Every route is one `AgentClient` call (the SSE route reads through the `Hub`), so the process
holds no state of its own and any number of them can run behind a load balancer. Errors are
`{"error": "<one line>"}`: 404 unknown run, 409 a refused update or a run that has ended, 422
malformed input, 401 a missing or wrong bearer token, 503 Temporal unreachable, 504 no worker
answered a query or an update in time. OpenAPI at /docs and /openapi.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import (
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from .._causes import cause_message
from .._http import listen as _listen
from ..client import AgentClient
from ..wire import (
    AGENT_NAME,
    AGENT_STATUS,
    EVENT_SOURCES,
    AgentRunResult,
    EventSource,
    HistoryPage,
    LiveEvent,
    PendingCall,
    RunState,
    StatusInfo,
    SubmitResult,
    parse_cursor,
)
from .agui import agui_router
from .hub import Hub, HubClosed
from .page import PAGE_PATHS, page_router
from .sse import KEEPALIVE_SECONDS

__all__ = ["TOKEN_VARIABLE", "create_app", "listen", "serve"]

TOKEN_VARIABLE = "DURABLE_AGENT_SERVE_TOKEN"
PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""Open without the token: the docs describe the API and hold no data, and a browser's docs
page fetches the schema without credentials."""
PUBLIC_PATHS |= PAGE_PATHS  # the operator page: it asks for the token, then sends it
_EVENTS_PATH = re.compile(r"^/runs/.+/events$")
_NEEDS_WORKER = "its queries and updates need a worker polling its task queue"


# ---------------------------------------------------------------- request and response bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRun(_Body):
    agent: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    thread_id: str | None = Field(
        default=None,
        min_length=1,
        description="A conversation's workflow id: starts it with this prompt if none is open,"
        " else the prompt is its next message (update-with-start).",
    )
    max_turns: int | None = Field(default=None, ge=1)
    conversation: bool = Field(default=False, description="Stay open for user messages.")


class Started(BaseModel):
    workflow_id: str
    run_id: str


class Sent(Started):
    detail: str


class Message(_Body):
    content: str = Field(min_length=1)
    name: str | None = None


class Decision(_Body):
    reason: str | None = None
    digest: str | None = Field(
        default=None, description="The pending call's digest: refused unless it still matches."
    )


class Resolution(_Body):
    content: Any = Field(description="The call's result: any JSON.")
    is_error: bool = False


class RunSummary(BaseModel):
    workflow_id: str
    run_id: str
    agent: str | None
    status: RunState | None
    """The run's AgentStatus search attribute."""
    execution_status: str | None
    """Temporal's: running, completed, failed, terminated, ..."""
    start_time: datetime
    close_time: datetime | None


class RunInfo(RunSummary):
    task_queue: str
    state: StatusInfo | None
    state_error: str | None = None
    """Why `state` is missing (its query needs a worker)."""


class Cancelling(BaseModel):
    workflow_id: str
    detail: str


class ErrorBody(BaseModel):
    error: str


IdempotencyKey = Annotated[
    str | None,
    Header(description="Sent again with a retry, the request is applied once (its update id)."),
]


# ---------------------------------------------------------------------------------- errors


def _error(status: int, line: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(line.split())}, status, headers=headers)


def rpc_error(exc: RPCError, workflow_id: str | None) -> tuple[int, str]:
    """The HTTP status and line for a failed Temporal call."""
    run = f"run {workflow_id}" if workflow_id else "the run"
    if exc.status is RPCStatusCode.NOT_FOUND:
        if "already completed" in exc.message:  # the server's words for a closed run
            return 409, f"{run} has ended"
        return 404, f"no run with id {workflow_id}" if workflow_id else exc.message
    if exc.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
        # What a query gets after the server's 30 s when no worker answers it.
        return 504, f"{run} did not answer in time ({exc.message}): {_NEEDS_WORKER}"
    if exc.status is RPCStatusCode.UNAVAILABLE:
        return 503, f"Temporal is unreachable: {exc.message}"
    statuses = {
        RPCStatusCode.FAILED_PRECONDITION: 503,
        RPCStatusCode.INVALID_ARGUMENT: 400,
        RPCStatusCode.ALREADY_EXISTS: 409,
        RPCStatusCode.RESOURCE_EXHAUSTED: 429,
    }
    return statuses.get(exc.status, 502), f"Temporal: {exc.message}"


def _validation_line(exc: RequestValidationError) -> str:
    """`body.prompt: Field required; query.limit: ...`, instead of FastAPI's nested dump."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":
            where = "body"
            message = f"not valid JSON ({error.get('ctx', {}).get('error', 'cannot parse')})"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "malformed request"


def _install_error_handlers(app: FastAPI) -> None:
    def workflow_id(request: Request) -> str | None:
        found = request.path_params.get("workflow_id")
        return str(found) if found is not None else None

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _error(exc.status_code, str(exc.detail), exc.headers)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _error(422, _validation_line(exc))

    async def temporal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RPCError)
        return _error(*rpc_error(exc, workflow_id(request)))

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WorkflowUpdateFailedError)
        return _error(409, f"refused: {exc.cause or exc}")

    async def update_timeout(request: Request, exc: Exception) -> Response:
        run = workflow_id(request)
        return _error(504, f"run {run} did not answer in time: {_NEEDS_WORKER}")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(RPCError, temporal)
    app.add_exception_handler(WorkflowUpdateFailedError, refused)
    app.add_exception_handler(WorkflowUpdateRPCTimeoutOrCancelledError, update_timeout)


class _BearerAuth:
    """401 without `Authorization: Bearer <token>` (compared in constant time), on every path
    but `PUBLIC_PATHS`. The events route also takes `?access_token=`: a browser's EventSource
    cannot set headers. A middleware, so that it answers before a body is parsed."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            given = ""
        if not given and request.method == "GET" and _EVENTS_PATH.match(scope["path"]):
            given = request.query_params.get("access_token", "")
        if not hmac.compare_digest(given.encode(), self.expected):
            why = "wrong bearer token" if given else "send Authorization: Bearer <token>"
            response = _error(401, f"unauthorized: {why}", {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------------- routes


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


def runs_router() -> APIRouter:
    """Runs: start, list, read, answer, steer, cancel, and the live stream."""
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
            )
            return Sent(workflow_id=sent.workflow_id, run_id=sent.run_id, detail=sent.detail)
        workflow_id = None
        if idempotency_key:
            workflow_id = (
                f"{body.agent}-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]}"
            )
            earlier = await _first_run(client, workflow_id)
            if earlier is not None:  # a retry, even of a run that has ended since
                response.status_code = 200
                return earlier
        try:
            handle = await client.start(
                body.agent,
                body.prompt,
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
            _sse(hub, workflow_id, cursor, deltas),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.post("/{workflow_id:path}/messages", response_model=SubmitResult, dependencies=WAKE)
    async def say(
        workflow_id: str, body: Message, client: ClientDep, idempotency_key: IdempotencyKey = None
    ) -> SubmitResult:
        """A user message, placed at the run's next safe point."""
        return await client.say(workflow_id, body.content, body.name, update_id=idempotency_key)

    @router.post("/{workflow_id:path}/interrupt", response_model=SubmitResult, dependencies=WAKE)
    async def interrupt(
        workflow_id: str, body: Message, client: ClientDep, idempotency_key: IdempotencyKey = None
    ) -> SubmitResult:
        """A user message now: the model call in flight is cut off and the message answered."""
        return await client.interrupt(
            workflow_id, body.content, body.name, update_id=idempotency_key
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

    return router


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


async def _sse(hub: Hub, workflow_id: str, after: str | None, deltas: bool) -> AsyncIterator[str]:
    """SSE frames for the run's events; a comment every `KEEPALIVE_SECONDS` while quiet. A
    reader's error ends the stream with an `error` event; a hub closing (shutdown) ends it
    silently, so the client reconnects, to another process, with its last id."""
    try:
        async with hub.subscribe(workflow_id, after, deltas=deltas) as subscription:
            while not subscription.done:
                batch = await subscription.next_batch(KEEPALIVE_SECONDS)
                yield "".join(map(_frame, batch)) if batch else ": keep-alive\n\n"
    except HubClosed:
        return
    except Exception as exc:
        line = rpc_error(exc, workflow_id)[1] if isinstance(exc, RPCError) else str(exc)
        yield f"event: error\ndata: {ErrorBody(error=line).model_dump_json()}\n\n"


def _frame(event: LiveEvent) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


# ------------------------------------------------------------------------------------ app


def create_app(client: AgentClient, *, token: str | None = None) -> FastAPI:
    """The ASGI app. `app.state.client` is the `AgentClient`, `app.state.hub` the `Hub`."""
    hub = Hub(client)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.close()

    app = FastAPI(
        title="durable-agent",
        summary="Durable agent runs over HTTP, with their live streams as Server-Sent Events.",
        lifespan=lifespan,
        # Documents the token for /docs' Authorize button; `_BearerAuth` enforces it.
        dependencies=[Depends(HTTPBearer(auto_error=False))] if token else None,
    )
    app.state.client = client
    app.state.hub = hub
    _install_error_handlers(app)
    if token:
        app.add_middleware(_BearerAuth, token=token)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    # A plain route: no token, and outside the API's schema.
    app.router.routes.append(Route("/healthz", healthz, methods=["GET"]))
    app.include_router(runs_router())
    app.include_router(agui_router())
    app.include_router(page_router())
    return app


# ---------------------------------------------------------------------------------- serving


def listen(host: str, port: int) -> socket.socket:
    return _listen(host, port, "serve")


class Server(uvicorn.Server):
    """uvicorn, which closes the app's hub before it waits for open responses: SSE streams
    never end by themselves, and a shutdown would otherwise wait for every client to leave."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        hub = getattr(getattr(app, "state", None), "hub", None)
        if isinstance(hub, Hub):
            await hub.close()
        await super().shutdown(sockets)


def server(app: FastAPI, **config: Any) -> Server:
    # Access logs name only the path and status, never the Authorization header; an SSE
    # URL's `access_token` would be in them, so they are off.
    return Server(uvicorn.Config(app, log_level="warning", access_log=False, **config))


async def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve `app` on `sock` (from `listen`) until SIGINT or SIGTERM."""
    await server(app).serve(sockets=[sock])
