"""Progress notifications of one tool call: the run's workflow id and state, repeated while
the run waits so the caller's connection stays open."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params

__all__ = ["KEEPALIVE_SECONDS", "Progress"]

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 30.0
"""While a run waits (an approval can take days), its last progress message is repeated this
often: clients that reset their request timeout on progress (the TypeScript SDK's 60 s default
with `resetTimeoutOnProgress`) and SSE readers (the Python SDK's 300 s read timeout) stay
connected."""


class Progress:
    """Progress notifications for one call, sent only when the caller gave a progress token.
    Each message starts with the run's workflow id, so a caller that is cut off can attach."""

    def __init__(self, ctx: ServerRequestContext[Any, Any], keepalive: float) -> None:
        self.wanted = progress_token_from_params(ctx.params) is not None
        self._ctx = ctx
        self._keepalive = keepalive
        self._count = 0
        self._last = ""
        self._sent_at = time.monotonic()
        self._lock = asyncio.Lock()  # notifications leave in the order of their `progress`

    async def say(self, message: str) -> None:
        if not self.wanted:
            return
        async with self._lock:
            self._count += 1
            self._last, self._sent_at = message, time.monotonic()
            await self._ctx.session.report_progress(self._count, None, message)

    @contextlib.asynccontextmanager
    async def kept_alive(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._repeat()) if self.wanted else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _repeat(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._sent_at + self._keepalive - time.monotonic())
                if self._last and time.monotonic() - self._sent_at >= self._keepalive:
                    await self.say(self._last)
        except Exception:  # the caller went away: its call ends anyway
            log.debug("progress keepalive stopped", exc_info=True)
