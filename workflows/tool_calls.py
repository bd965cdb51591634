"""Step 4 of the loop: how each tool call of a response gets its one answer.

Each call is resolved by its own coroutine, all of a response's at once, by its route (sorted
once, when the call book opened the response): an invocable tool (or an MCP server's) runs as an
activity; an approval waits for its decision first; external and long-running calls wait for
their `tool_result`; a handoff claims the next turn for another agent or waits for a person; a
sub-agent is a child run. Deadlines are durable timers. `resolve` returns the call's answer and
moves the call's phase in the `CallBook`; it never touches the run's state. A deadline that
fails the run raises `RunFailure`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import partial
from typing import TypeVar, assert_never

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models, the agent definitions the worker registered, and the replay-safe
    # metric helpers.
    from durable_agent import telemetry
    from durable_agent.authoring._agent import Agent, Handoff, SubAgent
    from durable_agent.authoring._mcp import MCPTool, parse_arguments
    from durable_agent.authoring._tool import Tool, ToolArgumentsError, ToolKind
    from durable_agent.wire import (
        EventKind,
        PendingCall,
        PendingKind,
        ToolCall,
        ToolInvocation,
        ToolMessage,
        ToolOutcome,
    )

from .call_book import CallBook, OpenCall, Route, Target
from .conversation import Conversation
from .failures import CALL_FAILED, cause_text, is_cancelled_exception, reraise_cancellation
from .guardrails import refused
from .outbox import Outbox
from .outcomes import RunFailure
from .toolsets import MCPToolsets
from .tree import ChildFailed, Tree


class ToolCalls:
    def __init__(
        self,
        conversation: Conversation,
        book: CallBook,
        outbox: Outbox,
        mcp: MCPToolsets,
        tree: Tree,
    ) -> None:
        self._conversation = conversation
        self._calls = book
        self._outbox = outbox
        self._mcp = mcp
        self._tree = tree

    async def resolve(self, agent: Agent, call: OpenCall) -> ToolMessage:
        """One call's answer. A large tool result's ref goes to the outbox, which sends the
        ref instead of the content in the next model request."""
        if call.answer is not None:  # answered before the snapshot this run resumed
            target = call.target
            if isinstance(target, Handoff) and target.agent and not call.answer.is_error:
                self._calls.claim_handoff(target.agent.name)
            return call.answer
        answer: ToolMessage | None = None
        try:
            answer = await self._answer(agent, call)
            return answer
        except BaseException as exc:
            if is_cancelled_exception(exc):
                raise  # the run is cancelled: the call stays open, and its result lists it
            call.resolve(None)
            raise
        finally:
            if answer is not None:
                call.resolve(answer)

    async def _answer(self, agent: Agent, call: OpenCall) -> ToolMessage:
        match call.route:
            case Route.INVOCABLE | Route.LONG_RUNNING | Route.EXTERNAL:
                return await self._run_tool(agent, call, _target(call, Tool))
            case Route.MCP:
                return await self._run_mcp_tool(agent, call, _target(call, MCPTool))
            case Route.AGENT | Route.PERSON:
                return await self._handoff(call, _target(call, Handoff))
            case Route.SUB_AGENT:
                return await self._run_sub_agent(call, _target(call, SubAgent))
            case Route.UNKNOWN:
                specs = [*agent.tool_specs(), *self._mcp.specs(agent)]
                known = ", ".join(s.name for s in specs) or "none"
                return _error(
                    call.call, f"unknown tool {call.call.name!r}; available tools: {known}"
                )
            case _:
                assert_never(call.route)

    async def _run_tool(self, agent: Agent, call: OpenCall, tool: Tool) -> ToolMessage:
        tool_call = call.call
        try:
            tool.parse_arguments(tool_call.arguments)
        except ToolArgumentsError as exc:
            return self._bad_arguments(tool_call, tool.name, str(exc))
        already_started = self._calls.was_waiting(tool_call.id)
        if call.needs_approval and not already_started:
            refused = await self._approval(call, tool)
            if refused is not None:
                return refused
        if tool.kind is not ToolKind.EXTERNAL and not already_started:
            outcome = await self._run_activity(agent, call, tool)
            if tool.kind is ToolKind.INVOCABLE or outcome.is_error:
                return _message(tool_call, outcome)
        kind: PendingKind = "long_running" if tool.kind is ToolKind.LONG_RUNNING else "external"
        if not await self._wait(call, kind, tool.deadline, tool.fail_on_deadline):
            return _timed_out(tool_call, "no result", tool.deadline)
        return _signalled(call)

    async def _run_sub_agent(self, call: OpenCall, sub: SubAgent) -> ToolMessage:
        """Another agent as a tool: a child run; its answer, or why it has none, goes to the
        model. Its usage, its own sub-agents' included, becomes this run's."""
        conversation, tool_call = self._conversation, call.call
        try:
            task = parse_arguments(tool_call.arguments).get("input")
            if not isinstance(task, str) or not task.strip():
                raise ValueError("'input' must be a non-empty string: the task for the agent")
        except ValueError as exc:
            return self._bad_arguments(tool_call, sub.name, str(exc))
        run = self._tree.child_id(conversation.turns, tool_call.id)
        conversation.event(
            "tool", "sub_agent_started", tool=sub.name, tool_call_id=tool_call.id, run=run
        )
        try:
            result = await self._tree.run(sub, tool_call, task, conversation.turns, call.share)
        except ChildFailed as exc:
            conversation.event(
                "tool",
                "sub_agent_ended",
                tool_call_id=tool_call.id,
                outcome="failed",
                error=str(exc),
            )
            return _error(tool_call, f"the {sub.name} agent failed: {exc}")
        conversation.usage = conversation.usage + result.usage
        conversation.event(
            "tool",
            "sub_agent_ended",
            tool_call_id=tool_call.id,
            outcome=result.outcome,
            tokens=result.usage.total_tokens,
        )
        text = result.final_text or ""
        if result.output is not None:  # a typed answer is its validated value, as JSON
            text = json.dumps(result.output)
        if result.outcome == "completed":
            return ToolMessage(
                tool_call_id=tool_call.id,
                name=tool_call.name,
                content=text or f"(the {sub.name} agent gave no answer)",
            )
        ended = f"the {sub.name} agent ended {result.outcome.replace('_', ' ')}"
        return _error(tool_call, f"{ended}: {text}" if text else ended)

    async def _run_mcp_tool(self, agent: Agent, call: OpenCall, tool: MCPTool) -> ToolMessage:
        """An MCP server's tool: its activity's result, errors included, goes to the model."""
        tool_call = call.call
        try:
            parse_arguments(tool_call.arguments)
        except ValueError as exc:
            return self._bad_arguments(tool_call, tool.name, str(exc))
        if call.needs_approval:
            refused = await self._approval(call, tool)
            if refused is not None:
                return refused
        return _message(tool_call, await self._run_activity(agent, call, tool))

    def _bad_arguments(self, tool_call: ToolCall, tool: str, error: str) -> ToolMessage:
        """The model gets the error back and may call again with fixed arguments."""
        self._conversation.event(
            "tool", "tool_failed", tool=tool, tool_call_id=tool_call.id, error=error
        )
        return _error(tool_call, f"{error}. Fix the arguments and call {tool} again.")

    async def _approval(self, call: OpenCall, tool: Tool | MCPTool) -> ToolMessage | None:
        """Wait for the call's approval: None when approved, else the answer to give."""
        tool_call = call.call
        if not await self._wait(call, "approval", tool.deadline, tool.fail_on_deadline):
            return _timed_out(tool_call, "no approval", tool.deadline)
        assert call.decision is not None
        if not call.decision.approved:
            reason = f": {call.decision.reason}" if call.decision.reason else ""
            self._conversation.event(
                "tool", "tool_rejected", tool=tool.name, tool_call_id=tool_call.id
            )
            return _error(tool_call, f"the user rejected this call{reason}")
        return None

    async def _run_activity(
        self, agent: Agent, call: OpenCall, tool: Tool | MCPTool
    ) -> ToolOutcome:
        tool_call = call.call
        call.proceed()
        self._conversation.event("tool", "tool_started", tool=tool.name, tool_call_id=tool_call.id)
        execute = (
            workflow.execute_local_activity
            if tool.local
            else partial(workflow.execute_activity, heartbeat_timeout=agent.heartbeat_for(tool))
        )
        try:
            outcome: ToolOutcome = await execute(
                tool.activity_name,
                ToolInvocation(
                    tool_call_id=tool_call.id,
                    name=tool_call.name,
                    arguments=tool_call.arguments,
                    agent=self._conversation.agent,
                    guardrails=call.guardrails,
                ),
                result_type=ToolOutcome,
                start_to_close_timeout=tool.timeout,
                retry_policy=tool.activity_retry,
                # no summary: each is a payload the SDK encodes and visits per activity
                # (measured: a third of the worker's serialization work); the type names the tool.
            )
        except CALL_FAILED as exc:
            reraise_cancellation(exc)
            outcome = ToolOutcome(
                content=f"tool {tool.name} failed: {cause_text(exc)}", is_error=True
            )
        if outcome.refused is not None:  # a tool guardrail stopped it in the activity
            return refused(self._conversation, tool_call, outcome.refused)
        if tool.local:
            self._outbox.held_locally(len(outcome.content))
        if outcome.ref is not None:
            self._outbox.keep_ref(tool_call.id, outcome.ref)
        self._conversation.events(outcome.events)
        kind: EventKind = "tool_failed" if outcome.is_error else "tool_finished"
        self._conversation.event("tool", kind, tool=tool.name, tool_call_id=tool_call.id)
        return outcome

    async def _handoff(self, call: OpenCall, handoff: Handoff) -> ToolMessage:
        tool_call = call.call
        if handoff.agent is not None:
            if not self._calls.claim_handoff(handoff.agent.name):
                return _error(tool_call, "only one handoff per response; this one was ignored")
            return ToolMessage(
                tool_call_id=tool_call.id,
                name=tool_call.name,
                content=f"Transferred to {handoff.name}.",
            )
        self._conversation.event(
            "agent",
            "handoff",
            source_agent=self._conversation.agent,
            target=handoff.name,
            to="person",
        )
        await self._wait(call, "handoff", None, False)
        return _signalled(call)

    async def _wait(
        self, call: OpenCall, kind: PendingKind, deadline: timedelta | None, fail: bool
    ) -> bool:
        """Wait durably for the call's signal; False when the deadline passed first."""
        tool_call, now = call.call, workflow.now()
        self._calls.start_wait(
            call,
            PendingCall(
                tool_call_id=tool_call.id,
                name=tool_call.name,
                arguments=tool_call.arguments,
                kind=kind,
                agent=self._conversation.agent,
                since=now,
                deadline=now + deadline if deadline is not None else None,
                digest=call.digest if kind == "approval" else None,
            ),
        )
        self._conversation.event(
            "tool", "waiting", tool=tool_call.name, tool_call_id=tool_call.id, kind=kind
        )
        telemetry.record_wait(workflow.metric_meter(), self._conversation.agent, kind)
        arrived = True
        try:
            await workflow.wait_condition(call.ready, timeout=deadline)
        except TimeoutError:
            arrived = False
            self._conversation.event(
                "tool", "deadline_passed", tool=tool_call.name, tool_call_id=tool_call.id
            )
            if fail:
                raise RunFailure(
                    f"tool call {tool_call.id} ({tool_call.name}) passed its deadline",
                    "ToolDeadlineExceeded",
                ) from None
        # Not in a `finally`: on eviction the coroutine is closed outside the workflow loop.
        self._calls.end_wait(call)
        return arrived


_T = TypeVar("_T", Tool, MCPTool, Handoff, SubAgent)


def _target(call: OpenCall, kind: type[_T]) -> _T:
    """The call's target, as its route says it is (the call book found both at once)."""
    target: Target = call.target
    assert isinstance(target, kind), f"{call.route} call without its {kind.__name__}"
    return target


def _message(call: ToolCall, outcome: ToolOutcome) -> ToolMessage:
    """A tool activity's outcome as the call's answer."""
    return ToolMessage(
        tool_call_id=call.id,
        name=call.name,
        content=outcome.content,
        is_error=outcome.is_error,
        attachments=outcome.attachments,
    )


def _error(call: ToolCall, message: str) -> ToolMessage:
    return ToolMessage(tool_call_id=call.id, name=call.name, content=message, is_error=True)


def _timed_out(call: ToolCall, missing: str, deadline: timedelta | None) -> ToolMessage:
    """One wording for every waiting call whose deadline passed."""
    return _error(call, f"{call.name} timed out: {missing} within {_duration(deadline)}")


def _duration(span: timedelta | None) -> str:
    """A deadline as people write it: `3 s`, `90 min`, `2 days`."""
    seconds = int(span.total_seconds()) if span is not None else 0
    for unit, size in (("days", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit[:-1] if unit == 'days' and count == 1 else unit}"
    return f"{seconds} s"


def _signalled(call: OpenCall) -> ToolMessage:
    assert call.result is not None
    return ToolMessage(
        tool_call_id=call.call.id,
        name=call.call.name,
        content=call.result.content_text(),
        is_error=call.result.is_error,
        attachments=call.result.attachments,
    )
