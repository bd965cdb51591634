"""Temporal's remote codec protocol over our encryption codec, for the web UI and the CLI.

`POST /encode` and `POST /decode` take and return `{"payloads": [...]}` (payloads in proto-JSON,
base64 data). The web UI calls it from the browser, so it answers CORS preflights for the UI's
origin and allows the headers the UI and `temporal --codec-endpoint` send (`X-Namespace`,
`Authorization`, `Content-Type`). Every namespace is served with the same keys. With a token,
requests without `Authorization: Bearer <token>` get 401. The keys stay in this process: they
are read from the environment like every other process's (`encryption.KeyRing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence

import uvicorn
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payload, Payloads

from ._http import listen as _listen
from .encryption import DecryptionError, EncryptionCodec

__all__ = [
    "DEFAULT_PORT",
    "TOKEN_VARIABLE",
    "codec_app",
    "listen",
    "serve",
    "serve_beside",
    "ui_origins",
]

DEFAULT_PORT = 8081
TOKEN_VARIABLE = "DURABLE_AGENT_CODEC_TOKEN"
ALLOWED_HEADERS = ("Authorization", "Content-Type", "X-Namespace")

Transform = Callable[[Payload], Payload]


def ui_origins(host: str, ui_port: int) -> list[str]:
    """The web UI's origins on `host`: a browser opens a loopback UI as localhost or 127.0.0.1."""
    hosts = ["localhost", "127.0.0.1"] if host in ("localhost", "127.0.0.1") else [host]
    return [f"http://{h}:{ui_port}" for h in hosts]


def codec_app(
    codec: EncryptionCodec, *, token: str | None = None, cors_origins: Sequence[str] = ()
) -> Starlette:
    """The ASGI app: `/encode`, `/decode`, and CORS for `cors_origins`."""
    expected = f"Bearer {token}".encode() if token else None

    def endpoint(
        transform: Callable[[Payload], Payload],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            if expected is not None and not hmac.compare_digest(
                request.headers.get("authorization", "").encode(), expected
            ):
                return PlainTextResponse("unauthorized: send Authorization: Bearer <token>", 401)
            try:
                payloads = ParseDict(await request.json(), Payloads())
                out = Payloads(payloads=[transform(p) for p in payloads.payloads])
            except (ValueError, ParseError) as exc:  # bad JSON, bad shape, DecryptionError
                reason = str(exc) if isinstance(exc, DecryptionError) else "not {payloads: [...]}"
                return PlainTextResponse(f"cannot {request.url.path[1:]}: {reason}", 400)
            return JSONResponse(MessageToDict(out))

        return handle

    return Starlette(
        routes=[
            Route("/encode", endpoint(codec.encrypt), methods=["POST"]),
            Route("/decode", endpoint(codec.decrypt), methods=["POST"]),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,  # outermost: a 401 still carries CORS headers the UI can read
                allow_origins=list(cors_origins),
                allow_methods=["POST", "OPTIONS"],
                allow_headers=list(ALLOWED_HEADERS),
                allow_credentials=True,
            )
        ],
    )


def listen(host: str, port: int) -> socket.socket:
    return _listen(host, port, "codec server")


class _ServerWithoutSignals(uvicorn.Server):
    """Leaves SIGINT and SIGTERM to its caller: uvicorn's own handling re-raises the signal as
    soon as it stops serving, which would kill us before the dev server child is stopped."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: Starlette) -> uvicorn.Server:
    # Access logs name only the path and status: neither bodies nor the Authorization header.
    return uvicorn.Server(uvicorn.Config(app, log_level="warning"))


async def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve on `sock` (from `listen`) until interrupted."""
    await _server(app).serve(sockets=[sock])


async def serve_beside(argv: Sequence[str], app: Starlette, sock: socket.socket) -> int:
    """Run `argv` (the dev server) as a child while serving `app` on `sock`; stop both when
    either ends or on Ctrl-C / SIGTERM. Returns the child's exit code."""
    server = _ServerWithoutSignals(uvicorn.Config(app, log_level="warning"))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    child = await asyncio.create_subprocess_exec(*argv)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    waiting = asyncio.create_task(child.wait())
    try:
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        if child.returncode is None:
            child.terminate()
        code = await asyncio.wait_for(child.wait(), 30)
        await asyncio.wait_for(serving, 10)
    return code
