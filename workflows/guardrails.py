"""Guardrails in the loop (README "Guardrails"): each a `guardrail.<name>` activity.

- Input: before a model call, the user's messages it has not answered yet (those after the
  last assistant message; the loop's own retry prompts excepted) go to the agent's input
  guardrails, all at once. A trip ends the turn as `GuardrailTripped`.
- Output: the final answer (validated first, for a typed output) goes to its output
  guardrails; a trip ends the turn the same way.
- Tool: each call goes to the tool guardrails before it is resolved; a refusal is the call's
  error result (a `guardrail_refused` event), which the model sees, and the run goes on.

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
    from durable_agent.wire import (
        AssistantMessage,
        GuardrailCall,
        GuardrailVerdict,
        Message,
        ToolMessage,
        UserMessage,
    )

from .call_book import OpenCall
from .conversation import Conversation
from .failures import CALL_FAILED, cause_text, reraise_cancellation
from .outcomes import GuardrailTripped, RunFailure
from .outputs import RETRY_NAME

LOCAL_GUARDRAILS = "local-guardrails"
"""Patch id: function guardrails run as local activities (before: regular activities)."""


class Guardrails:
    def __init__(self, conversation: Conversation) -> None:
        self._conversation = conversation

    async def check_input(self, agent: Agent) -> GuardrailTripped | None:
        guardrails = agent.guardrail_list("input")
        if not guardrails:
            return None
        text = "\n\n".join(m.content for m in unanswered(self._conversation.prompt()))
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
                reason = verdict.reason or "refused"
                self._conversation.event(
                    "tool",
                    "guardrail_refused",
                    guardrail=guardrail.name,
                    tool_call_id=tool_call.id,
                    tool=tool_call.name,
                    reason=reason,
                )
                answer = ToolMessage(
                    tool_call_id=tool_call.id,
                    name=tool_call.name,
                    content=f"refused by guardrail {guardrail.name}: {reason}",
                    is_error=True,
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


def unanswered(prompt: Sequence[Message]) -> list[UserMessage]:
    """The user's messages after the last assistant message (none once it has answered)."""
    found: list[UserMessage] = []
    for message in reversed(prompt):
        if isinstance(message, AssistantMessage):
            break
        if isinstance(message, UserMessage) and message.name != RETRY_NAME:
            found.append(message)
    return found[::-1]
