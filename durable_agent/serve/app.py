"""`durable-agent serve`: runs over HTTP, each run's live stream as Server-Sent Events.

Every route is one `AgentClient` call (the SSE route reads through the `Hub`), so the process
holds no state of its own and any number of them can run behind a load balancer. Errors are
`{"error": "<one line>"}`: 404 unknown run, 409 a refused update or a run that has ended, 422
malformed input, 401 a missing or wrong bearer token, 503 Temporal unreachable, 504 no worker
answered a query or an update in time. OpenAPI at /docs and /openapi.json.

The parts: `models` (bodies), `errors` and `auth`, `runs` (the JSON routes), `sse` (the live
stream), `hub` (one reader a run), `agui` (AG-UI), `page` (the operator page).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.routing import Route

from .._http import listen as _listen
from ..client import AgentClient
from .agui import agui_router
from .auth import TOKEN_VARIABLE, BearerAuth
from .body_limit import BodyLimit, max_body_bytes
from .errors import install_error_handlers
from .hub import Hub
from .page import page_router
from .runs import runs_router

__all__ = ["TOKEN_VARIABLE", "create_app", "listen", "serve", "server"]


# ------------------------------------------------------------------------------------ app


def create_app(
    client: AgentClient, *, token: str | None = None, max_body: int | None = None
) -> FastAPI:
    """The ASGI app. `app.state.client` is the `AgentClient`, `app.state.hub` the `Hub`.
    `max_body`: the largest request body in bytes (default: `DURABLE_AGENT_MAX_BODY_BYTES`, or
    64 MiB; a malformed setting raises ValueError)."""
    limit = max_body if max_body is not None else max_body_bytes()
    hub = Hub(client)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.close()

    app = FastAPI(
        title="durable-agent",
        summary="Durable agent runs over HTTP, with their live streams as Server-Sent Events.",
        lifespan=lifespan,
        # Documents the token for /docs' Authorize button; `BearerAuth` enforces it.
        dependencies=[Depends(HTTPBearer(auto_error=False))] if token else None,
    )
    app.state.client = client
    app.state.hub = hub
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=limit)
    if token:  # added last, so it answers first
        app.add_middleware(BearerAuth, token=token)

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
