"""The largest request body `durable-agent serve` reads (`DURABLE_AGENT_MAX_BODY_BYTES`).

Why: attachments arrive as base64 in JSON and are decoded in this process before they go to
payload storage, so without a bound one request could hold hundreds of megabytes here. The
default leaves room for what providers take (a 32 MB document is 43 MB as base64)."""

from __future__ import annotations

import os

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

__all__ = ["DEFAULT_MAX_BODY_BYTES", "MAX_BODY_VARIABLE", "BodyLimit", "max_body_bytes"]

MAX_BODY_VARIABLE = "DURABLE_AGENT_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


def max_body_bytes() -> int:
    """The configured limit; a malformed setting is refused in one line."""
    raw = os.environ.get(MAX_BODY_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"{MAX_BODY_VARIABLE}={raw!r} must be a positive number of bytes")
    return int(raw)


class BodyLimit:
    """413 for a body over `limit` bytes: at once when its Content-Length says so, else as
    soon as the bytes read pass it (a chunked body). A middleware, so it answers before a
    route parses anything."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _refusal(self) -> HTTPException:
        line = f"the request body is over {self.limit:,} bytes ({MAX_BODY_VARIABLE})"
        return HTTPException(413, line)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            refusal = self._refusal()
            await error_response(refusal.status_code, str(refusal.detail))(scope, receive, send)
            return
        read = 0

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.limit:
                    # A route reading the body re-raises an HTTPException as it is: the error
                    # handlers answer it in one line.
                    raise self._refusal()
            return message

        await self.app(scope, counted, send)
