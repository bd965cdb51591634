"""Step 4 of the loop: how each tool call of a response gets its one answer.

Each call is resolved by its own coroutine, all of a response's at once: an invocable tool (or an
MCP server's) runs as an activity; an approval waits for its decision first; external and
long-running calls wait for their `tool_result`; a handoff claims the next turn for another agent
or waits for a person. Deadlines are durable timers. The call's phase moves in the `CallBook`; the
loop (`agent_workflow.py`) appends the answers in call order once all are in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    # Pure data models, the agent definitions the worker registered, and the replay-safe
    # metric helpers.
    from durable_agent import telemetry
    from durable_agent._agent import Agent, Handoff, SubAgent
    from durable_agent._mcp import MCPTool, parse_arguments
    from durable_agent._tool import Tool, ToolArgumentsError, ToolKind
    from durable_agent.wire import (
        Budget,
        EventKind,
        PendingCall,
        PendingKind,
        ToolCall,
        ToolInvocation,
        ToolMessage,
        ToolOutcome,
    )

from .call_book import CallBook, OpenCall
from .children import ChildFailed, Children
from .conversation import Conversation
from .failures import CALL_FAILED, cause_text, is_cancelled_exception, reraise_cancellation
from .outbox import Outbox
from .toolsets import MCPToolsets

Answer = tuple[ToolMessage, str | None]
"""A call's answer, and the ref under which its tool's worker keeps the content."""


class ToolCalls:
    def __init__(
        self,
        conversation: Conversation,
        book: CallBook,
        outbox: Outbox,
        mcp: MCPToolsets,
        children: Children,
        waits_changed: Callable[[], None],
        failed: Callable[[], None],
        budget_left: Callable[[], Budget | None],
    ) -> None:
        """`waits_changed` is told whenever a call starts or stops waiting (the run's state
        follows what waits); `failed`, before a passed deadline fails the run; `budget_left`
        gives what a sub-agent started now may use."""
        self._conversation = conversation
        self._calls = book
        self._outbox = outbox
        self._mcp = mcp
        self._children = children
        self._budget_left = budget_left
        self._waits_changed = waits_changed
        self._failed = failed

    async def resolve(self, agent: Agent, call: OpenCall) -> Answer:
        """One call's answer, and the ref under which its tool's worker keeps the content."""
        if call.answer is not None:  # answered before the snapshot this run resumed
            target = agent.find_tool(call.call.name)
            if isinstance(target, Handoff) and target.agent and not call.answer.is_error:
                self._calls.claim_handoff(target.agent.name)
            return call.answer, None
        answer: Answer | None = None
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
                call.resolve(answer[0])

    async def _answer(self, agent: Agent, call: OpenCall) -> Answer:
        target = agent.find_tool(call.call.name) or self._mcp.tools(agent).get(call.call.name)
        if target is None:
            specs = [*agent.tool_specs(), *self._mcp.specs(agent)]
            known = ", ".join(s.name for s in specs) or "none"
            unknown = f"unknown tool {call.call.name!r}; available tools: {known}"
            return _error(call.call, unknown), None
        if isinstance(target, Handoff):
            return await self._handoff(call, target), None
        if isinstance(target, SubAgent):
            return await self._run_sub_agent(call.call, target), None
        if isinstance(target, MCPTool):
            return await self._run_mcp_tool(agent, call, target)
        return await self._run_tool(agent, call, target)

    async def _run_tool(self, agent: Agent, call: OpenCall, tool: Tool) -> Answer:
        tool_call = call.call
        try:
            tool.parse_arguments(tool_call.arguments)
        except ToolArgumentsError as exc:
            self._conversation.event(
                "tool", "tool_failed", tool=tool.name, tool_call_id=tool_call.id, error=str(exc)
            )
            return _error(tool_call, f"{exc}. Fix the arguments and call {tool.name} again."), None
        already_started = self._calls.was_waiting(tool_call.id)
        if call.needs_approval and not already_started:
            refused = await self._approval(call, tool)
            if refused is not None:
                return refused, None
        if tool.kind is not ToolKind.EXTERNAL and not already_started:
            outcome = await self._run_activity(agent, call, tool)
            if tool.kind is ToolKind.INVOCABLE or outcome.is_error:
                return _outcome(tool_call, outcome)
        kind: PendingKind = "long_running" if tool.kind is ToolKind.LONG_RUNNING else "external"
        if not await self._wait(call, kind, tool.deadline, tool.fail_on_deadline):
            return _timed_out(tool_call, "no result", tool.deadline), None
        return _signalled(call), None

    async def _run_sub_agent(self, tool_call: ToolCall, sub: SubAgent) -> ToolMessage:
        """Another agent as a tool: a child run; its answer, or why it has none, goes to the
        model. Its usage, its own sub-agents' included, becomes this run's."""
        conversation = self._conversation
        try:
            task = parse_arguments(tool_call.arguments).get("input")
            if not isinstance(task, str) or not task.strip():
                raise ValueError("'input' must be a non-empty string: the task for the agent")
        except ValueError as exc:
            conversation.event(
                "tool", "tool_failed", tool=sub.name, tool_call_id=tool_call.id, error=str(exc)
            )
            return _error(tool_call, f"{exc}. Fix the arguments and call {sub.name} again.")
        run = self._children.child_id(conversation.turns, tool_call.id)
        conversation.event(
            "tool", "sub_agent_started", tool=sub.name, tool_call_id=tool_call.id, run=run
        )
        try:
            result = await self._children.run(
                sub, tool_call, task, conversation.turns, self._budget_left()
            )
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
        if result.outcome == "completed":
            return ToolMessage(
                tool_call_id=tool_call.id,
                name=tool_call.name,
                content=text or f"(the {sub.name} agent gave no answer)",
            )
        ended = f"the {sub.name} agent ended {result.outcome.replace('_', ' ')}"
        return _error(tool_call, f"{ended}: {text}" if text else ended)

    async def _run_mcp_tool(self, agent: Agent, call: OpenCall, tool: MCPTool) -> Answer:
        """An MCP server's tool: its activity's result, errors included, goes to the model."""
        tool_call = call.call
        try:
            parse_arguments(tool_call.arguments)
        except ValueError as exc:
            self._conversation.event(
                "tool", "tool_failed", tool=tool.name, tool_call_id=tool_call.id, error=str(exc)
            )
            return _error(tool_call, f"{exc}. Fix the arguments and call {tool.name} again."), None
        if call.needs_approval:
            refused = await self._approval(call, tool)
            if refused is not None:
                return refused, None
        return _outcome(tool_call, await self._run_activity(agent, call, tool))

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
        if tool.local:
            self._outbox.held_locally(len(outcome.content))
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
        call.wait(
            PendingCall(
                tool_call_id=tool_call.id,
                name=tool_call.name,
                arguments=tool_call.arguments,
                kind=kind,
                agent=self._conversation.agent,
                since=now,
                deadline=now + deadline if deadline is not None else None,
                digest=call.digest if kind == "approval" else None,
            )
        )
        self._conversation.event(
            "tool", "waiting", tool=tool_call.name, tool_call_id=tool_call.id, kind=kind
        )
        telemetry.record_wait(workflow.metric_meter(), self._conversation.agent, kind)
        self._waits_changed()
        arrived = True
        try:
            await workflow.wait_condition(call.ready, timeout=deadline)
        except TimeoutError:
            arrived = False
            self._conversation.event(
                "tool", "deadline_passed", tool=tool_call.name, tool_call_id=tool_call.id
            )
            if fail:
                self._failed()
                raise ApplicationError(
                    f"tool call {tool_call.id} ({tool_call.name}) passed its deadline",
                    type="ToolDeadlineExceeded",
                    non_retryable=True,
                ) from None
        # Not in a `finally`: on eviction the coroutine is closed outside the workflow loop.
        call.proceed()
        self._waits_changed()
        return arrived


def _outcome(call: ToolCall, outcome: ToolOutcome) -> Answer:
    """A tool activity's outcome as the call's answer, with the ref its worker keeps it by."""
    message = ToolMessage(
        tool_call_id=call.id, name=call.name, content=outcome.content, is_error=outcome.is_error
    )
    return message, outcome.ref


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
    )
