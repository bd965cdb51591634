"""MCP activities: one dynamic activity handler serves every MCP server of the worker.

`mcp.<server>.list_tools` lists a server's tools (cached for the server's `cache_ttl`);
`mcp.<server>.<tool>` calls one. The input says which: a call carries a `ToolInvocation`, so a
server tool that is itself named `list_tools` is still called, not listed.

One client session per server per worker, opened on first use and reused; a session whose
transport fails is closed, the attempt fails, and Temporal's retry opens a new one. Each session
lives in a task of its own: the SDK's transports are anyio task groups, which must be entered
and left by one task, while activities run in tasks of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import mcp
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client  # the SDK's MCP timeouts
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT
from temporalio import activity
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ApplicationError

from durable_agent.authoring._mcp import MCPServer
from durable_agent.wire import MCPListTools, MCPToolInfo, MCPToolList, ToolInvocation, ToolOutcome

from .heartbeat import heartbeating
from .tool_failures import OwnFailures, out_of_time, prior_failures, tool_failed
from .transcripts import TranscriptCache

MAX_LIST_PAGES = 100
"""A server that pages its tool list for ever is cut off here rather than hang the listing."""

_TRANSPORT_ERRORS = (CONNECTION_CLOSED, REQUEST_TIMEOUT)
"""`MCPError` codes that say the connection, not the server, failed: reopen and retry."""


class _Session:
    """One server's client session, owned by a task of its own until closed."""

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self._client: asyncio.Future[mcp.Client] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._owner = asyncio.create_task(self._own(), name=f"mcp session {server.name}")

    async def client(self) -> mcp.Client:
        return await asyncio.shield(self._client)

    @property
    def usable(self) -> bool:
        return not self._owner.done() and not self._stop.is_set()

    async def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            await self._owner

    async def _own(self) -> None:
        try:
            async with _connected(self.server) as client:
                self._client.set_result(client)
                await self._stop.wait()
        except Exception as exc:
            if not self._client.done():
                self._client.set_exception(exc)
        finally:
            if not self._client.done():
                self._client.cancel()


@contextlib.asynccontextmanager
async def _connected(server: MCPServer) -> AsyncIterator[mcp.Client]:
    # No client-side response cache: the tool list's cache is ours, with the server's TTL.
    if server.command is not None:
        command, *args = server.command
        # The SDK alone would pass only `env` and six variables (HOME, PATH, ...).
        params = StdioServerParameters(
            command=command, args=args, env=server.environment(os.environ), cwd=server.cwd
        )
        async with mcp.Client(stdio_client(params, errlog=sys.stderr), cache=None) as client:
            yield client
        return
    assert server.url is not None
    async with (
        create_mcp_http_client(headers=dict(server.headers or {})) as http,
        mcp.Client(streamable_http_client(server.url, http_client=http), cache=None) as client,
    ):
        yield client


_pools: weakref.WeakSet[MCPActivities] = weakref.WeakSet()


class MCPActivities:
    """The MCP servers a worker serves, their sessions and their cached tool lists."""

    def __init__(self, servers: Iterable[MCPServer], results: TranscriptCache) -> None:
        self._servers: dict[str, MCPServer] = {}
        for server in servers:
            other = self._servers.setdefault(server.name, server)
            if other is not server:
                raise ValueError(f"two different MCP servers are named {server.name!r}")
        self._results = results
        self._sessions: dict[str, _Session] = {}
        self._opening = asyncio.Lock()
        self._listings: dict[str, tuple[float, MCPToolList]] = {}
        _pools.add(self)

    @activity.defn(dynamic=True)
    async def run(self, args: Sequence[RawValue]) -> ToolOutcome | MCPToolList:
        """`mcp.<server>.list_tools` or `mcp.<server>.<tool>`, by the activity's type."""
        kind, _, rest = activity.info().activity_type.partition(".")
        server_name, _, tool_name = rest.partition(".")
        server = self._servers.get(server_name) if kind == "mcp" else None
        if server is None or len(args) != 1:
            raise ApplicationError(
                f"this worker serves no MCP server for {activity.info().activity_type!r}",
                type="UnknownMCPServer",
                non_retryable=True,
            )
        payload = activity.payload_converter().from_payload(args[0].payload)
        if isinstance(payload, dict) and "tool_call_id" in payload:
            invocation = ToolInvocation.model_validate(payload)
            return await self._counted_call(server, tool_name, invocation)
        MCPListTools.model_validate(payload)
        async with heartbeating():
            return await self._list(server)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions))

    # ------------------------------------------------------------------ the two calls

    async def _list(self, server: MCPServer) -> MCPToolList:
        cached = self._listings.get(server.name)
        if cached is not None and time.monotonic() - cached[0] < server.cache_ttl.total_seconds():
            return cached[1]
        client = await self._client(server)
        tools: list[MCPToolInfo] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await self._guarded(server, client.list_tools(cursor=cursor))
            tools.extend(
                MCPToolInfo(
                    name=t.name, description=t.description or "", input_schema=t.input_schema
                )
                for t in page.tools
                if server.offers(t.name)
            )
            cursor = page.next_cursor
            if cursor is None:
                break
        listing = MCPToolList(server=server.name, tools=tools)
        self._listings[server.name] = (time.monotonic(), listing)
        return listing

    async def _counted_call(
        self, server: MCPServer, tool_name: str, invocation: ToolInvocation
    ) -> ToolOutcome:
        """A call whose failed connections count against the server's `retry` across attempts,
        and whose attempts lost with a dead worker do not, as a function tool's
        (`tool_failures.py`)."""
        info, call = activity.info(), _Call(invocation.name, server.retry, server.timeout)
        failures = prior_failures(info)
        if (ended := out_of_time(call, invocation.tool_call_id, info, [])) is not None:
            return ended
        try:
            async with heartbeating(OwnFailures(failures=failures)):
                return await self._call(server, tool_name, invocation)
        except Exception as exc:
            return tool_failed(call, invocation.tool_call_id, exc, failures + 1, [])

    async def _call(
        self, server: MCPServer, tool_name: str, invocation: ToolInvocation
    ) -> ToolOutcome:
        try:
            arguments = json.loads(invocation.arguments or "{}")
        except json.JSONDecodeError as exc:
            return ToolOutcome(content=f"arguments are not valid JSON ({exc.msg})", is_error=True)
        client = await self._client(server)
        try:
            result = await self._guarded(server, client.call_tool(tool_name, arguments))
        except mcp.MCPError as exc:
            if exc.code in _TRANSPORT_ERRORS:
                raise  # the session is closed: Temporal's retry opens a new one
            # The server refused the request (unknown tool, bad params): the model may fix it.
            return ToolOutcome(content=f"MCP error {exc.code}: {exc.message}", is_error=True)
        content = _render(result)
        ref = None if result.is_error else self._results.keep_result(content)
        return ToolOutcome(content=content, is_error=bool(result.is_error), ref=ref)

    # ------------------------------------------------------------------ sessions

    async def _client(self, server: MCPServer) -> mcp.Client:
        async with self._opening:
            session = self._sessions.get(server.name)
            if session is None or not session.usable:
                session = self._sessions[server.name] = _Session(server)
        try:
            return await session.client()
        except Exception:
            await self._drop(session)
            raise

    async def _guarded(self, server: MCPServer, request: Any) -> Any:
        """Await an SDK request; a failed transport closes the session, so the retry reopens."""
        try:
            return await request
        except mcp.MCPError as exc:
            if exc.code in _TRANSPORT_ERRORS:
                await self._drop(self._sessions.get(server.name))
            raise
        except Exception:
            await self._drop(self._sessions.get(server.name))
            raise

    async def _drop(self, session: _Session | None) -> None:
        if session is None:
            return
        if self._sessions.get(session.server.name) is session:
            del self._sessions[session.server.name]
        await session.close()


@dataclass(frozen=True)
class _Call:
    """An MCP tool as `tool_failures` counts it: by the name the model calls it."""

    name: str
    retry: RetryPolicy
    timeout: timedelta


def _render(result: mcp.types.CallToolResult) -> str:
    """A result's content blocks as the text the model reads: text as is, other blocks as
    JSON; structured content when there are no blocks."""
    parts = [
        block.text if isinstance(block, mcp.types.TextContent) else block.model_dump_json()
        for block in result.content
    ]
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content)
    return "\n".join(parts)


async def close_connections() -> None:
    """Close every MCP session of this process: stdio servers' subprocesses end with them."""
    await asyncio.gather(*(pool.close() for pool in list(_pools)))
