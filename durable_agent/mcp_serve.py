"""`durable-agent mcp-serve`: durable agents offered as MCP tools, one tool per agent.

A call starts a durable run (or attaches to one) and answers with the run's final text once
the run ends. The run belongs to Temporal, not to the call: a call that is cut off (a client
timeout, a dropped connection, this server restarted) leaves the run going, and a call with
the `workflow_id` that the first call's progress notifications named attaches to it again. A
run that waits for a person (an approval, an external result) keeps the call waiting until
someone answers it with `durable-agent approve` or the HTTP API; a caller that sent a progress
token hears each change of the run's state meanwhile.

Error rules follow the MCP spec (2025-11-25, SEP-1303): an unknown tool is a protocol error
(-32602); arguments that do not validate and runs that fail are tool errors (`isError`) with
a one-line reason, so a model can read them and correct itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
    ToolAnnotations,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ._agent import Agent
from ._causes import cause_message
from ._http import listen as _listen
from .client import LIVE_IDLE_INTERVAL, AgentClient
from .wire import AgentRunResult, AssistantMessage, RunState, UserMessage, cursor

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 30.0
"""While a run waits (an approval can take days), its last progress message is repeated this
often: clients that reset their request timeout on progress (the TypeScript SDK's 60 s default
with `resetTimeoutOnProgress`) and SSE readers (the Python SDK's 300 s read timeout) stay
connected."""
DESCRIPTION_CHARS = 400
"""How much of an agent's instructions (their first paragraph) describes its tool."""
ANSWERED = ("completed", "stopped")
"""Outcomes whose final text is an answer; any other ends the call with a tool error."""
WAITING = (RunState.WAITING_FOR_APPROVAL, RunState.WAITING_FOR_TOOLS, RunState.WAITING_FOR_USER)
_NOT_IN_TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]")
"""MCP tool names are 1-128 characters of A-Z a-z 0-9 _ - . (spec 2025-11-25)."""

RunId = Annotated[str, Field(min_length=1, max_length=1000)]
"""A workflow id: Temporal refuses ids over 1000 bytes (`limit.maxIDLength`)."""


def _schema_without_null_defaults(schema: dict[str, Any]) -> None:
    """Optional arguments are simply absent: no `"default": null` beside `"type": "string"`."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


class AgentToolArguments(BaseModel):
    """What every agent tool takes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_schema_without_null_defaults)

    prompt: str = Field(min_length=1, description="What to ask the agent.")
    thread_id: RunId | SkipJsonSchema[None] = Field(
        default=None,
        description="Continue the conversation with this id (the first call that names it"
        " starts it); the answer is the agent's reply to this prompt.",
    )
    workflow_id: RunId | SkipJsonSchema[None] = Field(
        default=None,
        description="The run of an earlier call that was cut off (named in its progress"
        " messages and result): wait for that run instead of starting one; the prompt is not"
        " sent again. If no run has this id, one starts under it, so a retry with the same id"
        " never starts a second run.",
    )

    @model_validator(mode="after")
    def _one_run(self) -> AgentToolArguments:
        if self.thread_id is not None and self.workflow_id is not None:
            raise ValueError("give thread_id or workflow_id, not both")
        return self


class AgentToolResult(BaseModel):
    """The structured content of an answer."""

    workflow_id: str = Field(description="The run (for a thread: the thread id).")
    agent: str = Field(description="The agent that answered (after a handoff, maybe another).")
    outcome: str = Field(
        description="completed or stopped; for a thread, its state after the answer"
        " (waiting_for_user: ready for the next message)."
    )
    turns: int
    usage: dict[str, int] = Field(description="requests, input_tokens, output_tokens")


def tool_name(agent: Agent) -> str:
    return _NOT_IN_TOOL_NAME.sub("_", agent.name)[:128]


def tool_description(agent: Agent) -> str:
    """The first paragraph of the agent's instructions, then what kind of tool this is."""
    summary = " ".join(agent.instructions.strip().split("\n\n", 1)[0].split())
    if len(summary) > DESCRIPTION_CHARS:
        summary = summary[: DESCRIPTION_CHARS - 3].rstrip() + "..."
    summary = summary or f"Ask the agent {agent.name}."
    return (
        f"{summary} (A durable agent run: it survives restarts and may wait for a person's"
        " approval; its workflow_id attaches to it again.)"
    )


class _Progress:
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


class AgentTools:
    """The tools' handlers: agents by tool name, and the client that starts and reads runs."""

    def __init__(
        self, agents: Sequence[Agent], client: AgentClient, keepalive: float = KEEPALIVE_SECONDS
    ) -> None:
        self.agents: dict[str, Agent] = {}
        for agent in agents:
            other = self.agents.setdefault(tool_name(agent), agent)
            if other is not agent:
                raise ValueError(
                    f"agents {other.name!r} and {agent.name!r} would both be the MCP tool"
                    f" {tool_name(agent)!r}: offer one of them"
                )
        self.client = client
        self.keepalive = keepalive
        self.input_schema = AgentToolArguments.model_json_schema()
        self.output_schema = AgentToolResult.model_json_schema()

    def tools(self) -> list[Tool]:
        return [
            Tool(
                name=name,
                title=agent.name,
                description=tool_description(agent),
                input_schema=self.input_schema,
                output_schema=self.output_schema,
                annotations=ToolAnnotations(read_only_hint=False, open_world_hint=True),
            )
            for name, agent in self.agents.items()
        ]

    def tool_input_schema(self, name: str) -> dict[str, Any] | None:
        return self.input_schema if name in self.agents else None

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return ListToolsResult(tools=self.tools())

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult:
        agent = self.agents.get(params.name)
        if agent is None:
            offered = ", ".join(sorted(self.agents))
            raise MCPError(INVALID_PARAMS, f"unknown tool {params.name!r} (offered: {offered})")
        try:
            args = AgentToolArguments.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _error(f"invalid arguments: {_validation_text(exc)}")
        progress = _Progress(ctx, self.keepalive)
        try:
            async with progress.kept_alive():
                if args.thread_id is not None:
                    return await self._converse(agent, args.thread_id, args.prompt, progress)
                return await self._run(agent, args, progress, _request_key(ctx))
        except Exception as exc:  # one call's trouble never ends the server
            log.exception("tool %s failed", params.name)
            return _error(" ".join(f"{type(exc).__name__}: {exc}".split()))

    # ------------------------------------------------------------------ one run per call

    async def _run(
        self,
        agent: Agent,
        args: AgentToolArguments,
        progress: _Progress,
        request_key: str | None,
    ) -> CallToolResult:
        workflow_id = args.workflow_id
        if workflow_id is None and request_key is not None:
            workflow_id = f"{agent.name}-mcp-{request_key}"
        workflow_id, attached = await self._attach_or_start(agent, args.prompt, workflow_id)
        await progress.say(f"{workflow_id}: {'attached' if attached else 'started'}")
        watching = asyncio.create_task(self._watch(workflow_id, progress))
        try:
            result = await self.client.result(workflow_id)
        except WorkflowFailureError as exc:
            return _error(" ".join(f"run {workflow_id} failed: {cause_message(exc)}".split()))
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        return _answer(workflow_id, result)

    async def _attach_or_start(
        self, agent: Agent, prompt: str, workflow_id: str | None
    ) -> tuple[str, bool]:
        """The run with `workflow_id` if there is one (running or ended), else a new one."""
        if workflow_id is not None and await self.client.find(workflow_id) is not None:
            return workflow_id, True
        try:
            handle = await self.client.start(agent.name, prompt, workflow_id=workflow_id)
        except WorkflowAlreadyStartedError:  # another call started it a moment ago
            assert workflow_id is not None
            return workflow_id, True
        return handle.id, False

    async def _watch(self, workflow_id: str, progress: _Progress) -> None:
        """Tell the caller each state the run enters; reads only while someone listens."""
        if not progress.wanted:
            return
        try:
            async for event in self.client.events(workflow_id, deltas=False):
                if event.type == "state":
                    await progress.say(await self._state_line(workflow_id, event.state))
        except Exception:  # progress is a courtesy: the answer still comes from the result
            log.warning("progress of %s stopped", workflow_id, exc_info=True)

    async def _state_line(self, workflow_id: str, state: RunState) -> str:
        """`wf: waiting_for_approval: 1 pending call (pay p1)`."""
        line = f"{workflow_id}: {state.value}"
        if state not in WAITING:
            return line
        try:
            pending = await self.client.pending(workflow_id)
        except RPCError:
            return line
        if pending:
            calls = ", ".join(f"{p.name} {p.tool_call_id}" for p in pending)
            plural = "s" if len(pending) > 1 else ""
            line += f": {len(pending)} pending call{plural} ({calls})"
        return line

    # ------------------------------------------------------------------ threads

    async def _converse(
        self, agent: Agent, thread: str, prompt: str, progress: _Progress
    ) -> CallToolResult:
        """Send `prompt` to the conversation run `thread` (started by this call if it is not
        open) and answer with the agent's reply to it; the run stays open for the next one."""
        since = await self._stream_end(thread)
        try:
            await self.client.send(agent.name, prompt, thread_id=thread)
        except WorkflowUpdateFailedError as exc:
            return _error(" ".join(f"thread {thread} refused the message: {exc.cause}".split()))
        await progress.say(f"{thread}: message accepted")
        reply: str | None = None
        mine = False
        async for event in self.client.events(thread, after=cursor(since, 0), deltas=False):
            if event.type == "end":
                try:
                    return _answer(thread, await self.client.result(thread))
                except WorkflowFailureError as exc:
                    return _error(" ".join(f"thread {thread} failed: {cause_message(exc)}".split()))
            if event.type == "state":
                await progress.say(await self._state_line(thread, event.state))
                if mine and event.state is RunState.WAITING_FOR_USER:
                    break  # e.g. handed to a person: the caller's next message answers
            item = event.item
            if isinstance(item, UserMessage) and item.content == prompt:
                mine = True
            elif mine and isinstance(item, AssistantMessage) and not item.tool_calls:
                reply = item.content
                break
        status = await self.client.status(thread)
        structured = AgentToolResult(
            workflow_id=thread,
            agent=status.agent,
            outcome=status.state.value,
            turns=status.turn,
            usage=status.usage.model_dump(),
        )
        return _result(reply or "", structured)

    async def _stream_end(self, thread: str) -> int:
        """Where the open thread's stream ends now; its reply to a new message comes later.
        Reading it needs a worker: while none answers, wait, as `AgentClient.events` does."""
        while True:
            try:
                description = await self.client.find(thread)
                if description is None or description.status is not WorkflowExecutionStatus.RUNNING:
                    return 0  # a new run starts under this id
                page = await self.client.history(thread)
                while page.more:
                    page = await self.client.history(thread, since=page.next)
                return page.next
            except RPCError as exc:
                if exc.status is RPCStatusCode.NOT_FOUND:
                    return 0
                await asyncio.sleep(LIVE_IDLE_INTERVAL)


def mcp_server(
    agents: Sequence[Agent], client: AgentClient, *, keepalive: float = KEEPALIVE_SECONDS
) -> Server[Any]:
    """An MCP server (the `mcp` SDK's low-level `Server`) offering each agent as a tool.
    Raises ValueError when two agents' names make one tool name."""
    tools = AgentTools(agents, client, keepalive)
    return Server(
        "durable-agent",
        instructions="Each tool is an agent. A call is a durable run: if a call is cut off,"
        " call the tool again with the workflow_id its progress named.",
        get_tool_input_schema=tools.tool_input_schema,
        on_list_tools=tools.list_tools,
        on_call_tool=tools.call_tool,
    )


async def serve_stdio(server: Server[Any]) -> None:
    """Serve over this process's stdin and stdout until the client closes them."""
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def listen(host: str, port: int) -> socket.socket:
    return _listen(host, port, "MCP server")


async def serve_http(server: Server[Any], host: str, sock: socket.socket) -> None:
    """Serve streamable HTTP at /mcp on `sock` (from `listen`) until interrupted. On a loopback
    `host` the SDK refuses other Host and Origin headers (DNS rebinding protection)."""
    app = server.streamable_http_app(streamable_http_path="/mcp", host=host)
    await uvicorn.Server(uvicorn.Config(app, log_level="warning")).serve(sockets=[sock])


# ---------------------------------------------------------------------- results


def _request_key(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """What the protocol keeps stable for one request: its id within an HTTP session (the
    handshake era's `Mcp-Session-Id`), so a request delivered twice starts one run. stdio and
    the 2026-07-28 stateless era name no session: each call starts its own run."""
    headers = getattr(ctx.request, "headers", None)
    session = headers.get("mcp-session-id") if headers is not None else None
    if not session or ctx.request_id is None:
        return None
    return hashlib.sha256(f"{session}\n{ctx.request_id}".encode()).hexdigest()[:16]


def _answer(workflow_id: str, result: AgentRunResult) -> CallToolResult:
    structured = AgentToolResult(
        workflow_id=workflow_id,
        agent=result.agent,
        outcome=result.outcome,
        turns=result.turns,
        usage=result.usage.model_dump(),
    )
    if result.outcome not in ANSWERED:
        waiting = f" with {len(result.pending)} call(s) still waiting" if result.pending else ""
        return _result(
            f"run {workflow_id} ended {result.outcome}{waiting}", structured, is_error=True
        )
    return _result(result.final_text or "", structured)


def _result(text: str, structured: AgentToolResult, *, is_error: bool = False) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json"),
        is_error=is_error,
    )


def _error(reason: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=reason)], is_error=True)


def _validation_text(exc: ValidationError) -> str:
    """`prompt: Field required; colour: Extra inputs are not permitted`."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)
