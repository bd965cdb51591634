"""The bearer token of `durable-agent serve` (`--token` or DURABLE_AGENT_SERVE_TOKEN)."""

from __future__ import annotations

import hmac
import re

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_response
from .page import PAGE_PATHS

__all__ = ["PUBLIC_PATHS", "TOKEN_VARIABLE", "BearerAuth"]

TOKEN_VARIABLE = "DURABLE_AGENT_SERVE_TOKEN"
PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""Open without the token: the docs describe the API and hold no data, and a browser's docs
page fetches the schema without credentials."""
PUBLIC_PATHS |= PAGE_PATHS  # the operator page: it asks for the token, then sends it
_EVENTS_PATH = re.compile(r"^/runs/.+/events$")


class BearerAuth:
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
            response = error_response(401, f"unauthorized: {why}", {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
