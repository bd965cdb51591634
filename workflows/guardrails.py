"""Guardrails in the loop (README "Guardrails"): each a `guardrail.<name>` activity.

- Input: before a model call, the user's messages it has not answered yet (those after the
  last assistant message; the loop's own retry prompts excepted) go to the agent's input
  guardrails, all at once. A trip ends the turn as `GuardrailTripped`.
- Output: the final answer (validated first, for a typed output) goes to its output
  guardrails; a trip ends the turn the same way.
- Tool: each call goes to the tool guardrails before it is resolved; a refusal is the call's
  error result (a `guardrail_refused` event), which the model sees, and the run goes on. A call
  that runs a tool activity of ours, with no approval to wait for, is checked inside that
  activity by its function guardrails (`local` unset): a passing check then issues no command
  (bench/guards.py measured a local activity per call at 1.14x a plain turn in time, 1.08x in
  CPU). Other calls (external tools, MCP tools, approvals, handoffs, sub-agents) and agent
  guardrails keep a `guardrail.<name>` activity of their own, run before the call.

A guardrail whose activity fails for good fails the run (`GuardrailFailed`): a check that could
not run is not a pass. An agent without guardrails issues no command here, so its recorded
runs replay unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models, and the agent definitions the worker registered.
    from durable_agent.authoring._agent import Agent
    from durable_agent.authoring._guardrails import Guardrail
    from durable_agent.authoring._tool import Tool
    from durable_agent.wire import (
        AssistantMessage,
        GuardrailCall,
        GuardrailRefusal,
        GuardrailVerdict,
        Item,
        ToolCall,
        ToolMessage,
        ToolOutcome,
        UserMessage,
    )

from .call_book import OpenCall, Route
from .conversation import Conversation
from .failures import CALL_FAILED, cause_text, reraise_cancellation
from .outcomes import GuardrailTripped, RunFailure
from .outputs import RETRY_NAME

LOCAL_GUARDRAILS = "local-guardrails"
"""Patch id: function guardrails run as local activities (before: regular activities)."""
TOOL_GUARDRAILS_IN_ACTIVITY = "tool-guardrails-in-activity"
"""Patch id: a tool call's function guardrails are checked inside its tool activity
(before: a local activity per guardrail and call)."""


class Guardrails:
    def __init__(self, conversation: Conversation) -> None:
        self._conversation = conversation

    async def check_input(self, agent: Agent) -> GuardrailTripped | None:
        guardrails = agent.guardrail_list("input")
        if not guardrails:
            return None
        # From the end of the record: not a copy of the whole conversation every turn.
        text = "\n\n".join(m.content for m in unanswered(self._conversation.items))
        if not text:
            return None
        return await self._verdicts(agent, guardrails, GuardrailCall, text)

    async def check_output(
        self, agent: Agent, message: AssistantMessage
    ) -> GuardrailTripped | None:
        guardrails = agent.guardrail_list("output")
        if not guardrails:
            return None
        return await self._verdicts(agent, guardrails, GuardrailCall, message.content or "")

    async def around(
        self,
        agent: Agent,
        call: OpenCall,
        resolve: Callable[[Agent, OpenCall], Awaitable[ToolMessage]],
    ) -> ToolMessage:
        """The call's answer: its tool guardrails' refusal, or what `resolve` gives."""
        guardrails = agent.guardrail_list("tool")
        if not guardrails or call.answer is not None:
            return await resolve(agent, call)
        if in_tool_activity(call, guardrails) and workflow.patched(TOOL_GUARDRAILS_IN_ACTIVITY):
            call.guardrails = [g.name for g in guardrails]  # its outcome says if one refused
            return await resolve(agent, call)
        tool_call = call.call
        verdicts = await asyncio.gather(
            *(
                self._ask(
                    agent,
                    g,
                    GuardrailCall(
                        guardrail=g.name,
                        kind="tool",
                        agent=agent.name,
                        tool=tool_call.name,
                        arguments=tool_call.arguments,
                    ),
                )
                for g in guardrails
            )
        )
        for guardrail, verdict in zip(guardrails, verdicts, strict=True):
            if verdict.tripped:
                text = refusal_text(
                    self._conversation, tool_call, guardrail.name, verdict.reason or "refused"
                )
                answer = ToolMessage(
                    tool_call_id=tool_call.id, name=tool_call.name, content=text, is_error=True
                )
                call.resolve(answer)
                return answer
        return await resolve(agent, call)

    async def _verdicts(
        self,
        agent: Agent,
        guardrails: Sequence[Guardrail],
        shape: type[GuardrailCall],
        text: str,
    ) -> GuardrailTripped | None:
        calls = [
            shape(guardrail=g.name, kind=g.kind, agent=agent.name, text=text) for g in guardrails
        ]
        verdicts = await asyncio.gather(
            *(self._ask(agent, g, c) for g, c in zip(guardrails, calls, strict=True))
        )
        for guardrail, verdict in zip(guardrails, verdicts, strict=True):
            if verdict.tripped:
                reason = verdict.reason or f"guardrail {guardrail.name} tripped"
                self._conversation.event(
                    "agent",
                    "guardrail_tripped",
                    guardrail=guardrail.name,
                    kind=guardrail.kind,
                    reason=reason,
                )
                return GuardrailTripped(guardrail.name, guardrail.kind, reason)
        return None

    async def _ask(
        self, agent: Agent, guardrail: Guardrail, call: GuardrailCall
    ) -> GuardrailVerdict:
        # Runs recorded before local guardrails called every guardrail as a regular activity.
        local = guardrail.runs_locally and workflow.patched(LOCAL_GUARDRAILS)
        execute = (
            workflow.execute_local_activity
            if local
            else partial(workflow.execute_activity, heartbeat_timeout=agent.heartbeat_timeout)
        )
        try:
            verdict: GuardrailVerdict = await execute(
                guardrail.activity_name,
                call,
                result_type=GuardrailVerdict,
                start_to_close_timeout=guardrail.timeout,
                retry_policy=guardrail.retry,
            )
        except CALL_FAILED as exc:
            reraise_cancellation(exc)
            raise RunFailure(
                f"guardrail {guardrail.name} could not run: {cause_text(exc)}", "GuardrailFailed"
            ) from exc
        return verdict


def in_tool_activity(call: OpenCall, guardrails: Sequence[Guardrail]) -> bool:
    """Whether the call's own tool activity checks it: it runs one of our tools right away
    (no approval first, when a refused call must not be put to a person), and every guardrail
    is a function left to choose where it runs."""
    return (
        call.route in (Route.INVOCABLE, Route.LONG_RUNNING)
        and not call.needs_approval
        and isinstance(call.target, Tool)
        and call.target.fn is not None
        and all(g.in_tool_activity for g in guardrails)
    )


def refused(conversation: Conversation, call: ToolCall, refusal: GuardrailRefusal) -> ToolOutcome:
    """A tool activity's outcome when a guardrail stopped the call in it: the same refusal the
    model sees from a guardrail activity, or the run's failure when the check could not run."""
    if refusal.error is not None:
        raise RunFailure(
            f"guardrail {refusal.guardrail} could not run: {refusal.error}", "GuardrailFailed"
        )
    text = refusal_text(conversation, call, refusal.guardrail, refusal.reason or "refused")
    return ToolOutcome(content=text, is_error=True)


def refusal_text(conversation: Conversation, call: ToolCall, guardrail: str, reason: str) -> str:
    """Record a refusal (a `guardrail_refused` event) and word it for the model."""
    conversation.event(
        "tool",
        "guardrail_refused",
        guardrail=guardrail,
        tool_call_id=call.id,
        tool=call.name,
        reason=reason,
    )
    return f"refused by guardrail {guardrail}: {reason}"


def unanswered(items: Sequence[Item]) -> list[UserMessage]:
    """The user's messages after the last assistant message (none once it has answered)."""
    found: list[UserMessage] = []
    for message in reversed(items):
        if isinstance(message, AssistantMessage):
            break
        if isinstance(message, UserMessage) and message.name != RETRY_NAME:
            found.append(message)
    return found[::-1]
