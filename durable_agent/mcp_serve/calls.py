"""The tools' handlers: a call starts a durable run (or attaches to one, or sends a thread its
next message) and answers with the run's final text once it has one."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    Tool,
    ToolAnnotations,
)
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from .._causes import cause_message
from .._follow import stream_end
from .._output import Valid
from ..authoring._agent import Agent
from ..client import AgentClient
from ..wire import WAITING, AssistantMessage, RunState, UserMessage
from .outputs import ToolOutput
from .progress import KEEPALIVE_SECONDS, Progress
from .tools import (
    AgentToolArguments,
    AgentToolResult,
    answered,
    refused,
    replied,
    tool_description,
    tool_name,
    validation_text,
)

__all__ = ["AgentTools"]

log = logging.getLogger(__name__)


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
        result_schema = AgentToolResult.model_json_schema()
        self.outputs = {n: ToolOutput.of(a, result_schema) for n, a in self.agents.items()}

    def tools(self) -> list[Tool]:
        return [
            Tool(
                name=name,
                title=agent.name,
                description=tool_description(agent),
                input_schema=self.input_schema,
                output_schema=self.outputs[name].schema,
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
            return refused(f"invalid arguments: {validation_text(exc)}")
        progress = Progress(ctx, self.keepalive)
        try:
            async with progress.kept_alive():
                if args.thread_id is not None:
                    return await self._converse(agent, args.thread_id, args.prompt, progress)
                return await self._run(agent, args, progress, _request_key(ctx))
        except Exception as exc:  # one call's trouble never ends the server
            log.exception("tool %s failed", params.name)
            return refused(f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ one run per call

    async def _run(
        self,
        agent: Agent,
        args: AgentToolArguments,
        progress: Progress,
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
            return refused(f"run {workflow_id} failed: {cause_message(exc)}")
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        return answered(workflow_id, result, self.outputs[tool_name(agent)].finals)

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

    async def _watch(self, workflow_id: str, progress: Progress) -> None:
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
        self, agent: Agent, thread: str, prompt: str, progress: Progress
    ) -> CallToolResult:
        """Send `prompt` to the conversation run `thread` (started by this call if it is not
        open) and answer with the agent's reply to it; the run stays open for the next one."""
        # Where the thread's stream ends now: its reply to this message comes later.
        since = await stream_end(self.client, thread)
        try:
            await self.client.send(agent.name, prompt, thread_id=thread)
        except WorkflowUpdateFailedError as exc:
            return refused(f"thread {thread} refused the message: {exc.cause}")
        await progress.say(f"{thread}: message accepted")
        out = self.outputs[tool_name(agent)]
        reply: str | None = None
        typed: Valid | None = None
        mine = False
        async for event in self.client.events(thread, after=since, deltas=False):
            if event.type == "end":
                try:
                    result = await self.client.result(thread)
                    return answered(thread, result, out.finals)
                except WorkflowFailureError as exc:
                    return refused(f"thread {thread} failed: {cause_message(exc)}")
            if event.type == "state":
                await progress.say(await self._state_line(thread, event.state))
                if mine and event.state is RunState.WAITING_FOR_USER:
                    break  # e.g. handed to a person: the caller's next message answers
            item = event.item
            if isinstance(item, UserMessage) and item.content == prompt:
                mine = True
            elif mine and isinstance(item, AssistantMessage) and not item.tool_calls:
                final = out.finals.get(item.agent or agent.name)
                if final is None:  # as `answered`: this server's agent module is not the worker's
                    name = item.agent
                    return refused(f"thread {thread}: agent {name!r}, unknown here, answered")
                spec = final.output
                if spec is not None:
                    checked = spec.validate(item.content)
                    if not isinstance(checked, Valid):
                        continue  # the run sends it back with the error: its retry answers
                    typed = checked
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
        if reply is None and out.required:  # e.g. handed to a person
            text = f"thread {thread} is {status.state.value} without an answer of its output type"
            return replied(text, structured, is_error=True)
        return replied(reply or "", structured, output=typed)


def _request_key(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """What the protocol keeps stable for one request: its id within an HTTP session (the
    handshake era's `Mcp-Session-Id`), so a request delivered twice starts one run. stdio and
    the 2026-07-28 stateless era name no session: each call starts its own run."""
    headers = getattr(ctx.request, "headers", None)
    session = headers.get("mcp-session-id") if headers is not None else None
    if not session or ctx.request_id is None:
        return None
    return hashlib.sha256(f"{session}\n{ctx.request_id}".encode()).hexdigest()[:16]
