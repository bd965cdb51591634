"""How `durable-agent serve` answers what went wrong: `{"error": "<one line>"}` with the HTTP
status that says whose problem it is (404 unknown run, 409 a refused update or a run that has
ended, 422 malformed input, 503 Temporal unreachable, 504 no worker answered in time)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

__all__ = ["error_response", "install_error_handlers", "rpc_error"]

_NEEDS_WORKER = "its queries and updates need a worker polling its task queue"


def error_response(
    status: int, line: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
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


def install_error_handlers(app: FastAPI) -> None:
    def workflow_id(request: Request) -> str | None:
        found = request.path_params.get("workflow_id")
        return str(found) if found is not None else None

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail), exc.headers)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, _validation_line(exc))

    async def temporal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RPCError)
        return error_response(*rpc_error(exc, workflow_id(request)))

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WorkflowUpdateFailedError)
        return error_response(409, f"refused: {exc.cause or exc}")

    async def update_timeout(request: Request, exc: Exception) -> Response:
        run = workflow_id(request)
        return error_response(504, f"run {run} did not answer in time: {_NEEDS_WORKER}")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(RPCError, temporal)
    app.add_exception_handler(WorkflowUpdateFailedError, refused)
    app.add_exception_handler(WorkflowUpdateRPCTimeoutOrCancelledError, update_timeout)
