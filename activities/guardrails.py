"""Guardrail activities: one activity type per guardrail (`guardrail.<name>`).

A function guardrail is called with the text or the tool call. An agent guardrail is one model
call of that agent (its instructions, the text as the user's message), asked for a
`GuardrailVerdict` in the provider's structured outputs and validated like any typed output;
an answer that does not validate fails the attempt, and Temporal retries it.

A function tool guardrail is usually checked in the tool's own activity instead
(`check_tool_call`, called by `tools.py`), where a passing check costs no command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_agent._causes import cause_message
from durable_agent._output import Valid
from durable_agent.authoring._guardrails import Guardrail
from durable_agent.wire import (
    GuardrailCall,
    GuardrailRefusal,
    GuardrailVerdict,
    ModelRequest,
    ToolInvocation,
    UserMessage,
)

from .heartbeat import heartbeating
from .model import ModelActivities
from .providers import split_model
from .tool_failures import is_final, retry_delay


def guardrail_activity(
    guardrail: Guardrail, models: ModelActivities
) -> Callable[[GuardrailCall], Any]:
    async def run_guardrail(call: GuardrailCall) -> GuardrailVerdict:
        async with heartbeating():
            if guardrail.agent is None:
                return await guardrail.check(call)
            return await _ask_agent(guardrail, models, call)

    return activity.defn(name=guardrail.activity_name)(run_guardrail)


async def _ask_agent(
    guardrail: Guardrail, models: ModelActivities, call: GuardrailCall
) -> GuardrailVerdict:
    agent = guardrail.agent
    assert agent is not None and agent.output is not None
    text = call.text if call.kind != "tool" else f"Tool call {call.tool}({call.arguments})"
    request = ModelRequest(
        model=agent.model_string,
        agent=agent.name,
        instructions=agent.instructions or None,
        messages=[UserMessage(content=f"Check this {call.kind}:\n\n{text}")],
        settings=agent.settings,
        output=agent.output.format,
    )
    prefix, name = split_model(request.model)
    response = await models.provider(prefix).complete(request, name)
    checked = agent.output.validate(response.message.content)
    if not isinstance(checked, Valid):
        raise ApplicationError(
            f"guardrail agent {agent.name!r} did not answer a verdict: {checked.error}",
            type="GuardrailAnswerInvalid",
        )
    return GuardrailVerdict.model_validate(checked.value)


def require_guardrails(guardrails: Mapping[str, Guardrail], invocation: ToolInvocation) -> None:
    """Raise a retryable error when this worker lacks a guardrail the call names (a worker
    serving the tool but not the agent, or one from before a guardrail was added in a rolling
    deploy): Temporal runs the call again, on a worker that has it, within the call's deadline.
    A call is never let through without its check, and a worker's gap never fails the run."""
    missing = [name for name in invocation.guardrails if name not in guardrails]
    if missing:
        raise ApplicationError(
            f"guardrail {', '.join(missing)} is not on this worker", type="GuardrailMissing"
        )


async def check_tool_call(
    guardrails: Mapping[str, Guardrail], invocation: ToolInvocation
) -> GuardrailRefusal | None:
    """The call's tool guardrails, checked inside its tool activity before the tool runs: the
    first (in the agent's order) that refuses it or could not check it; None when all pass.

    A passing check then costs the run nothing beyond the function call: no command, no
    marker, no extra workflow activation (bench/guards.py). They run in parallel, as the
    workflow runs separate guardrail activities, each retried by its own `retry` policy.
    """
    if not invocation.guardrails:
        return None
    checks = [_checked(guardrails[name], invocation) for name in invocation.guardrails]
    for refusal in await asyncio.gather(*checks):
        if refusal is not None:
            return refusal
    return None


async def _checked(guardrail: Guardrail, invocation: ToolInvocation) -> GuardrailRefusal | None:
    call = GuardrailCall(
        guardrail=guardrail.name,
        kind="tool",
        agent=invocation.agent,
        tool=invocation.name,
        arguments=invocation.arguments,
    )
    failures = 0
    while True:
        try:
            async with asyncio.timeout(guardrail.timeout.total_seconds()):
                verdict = await guardrail.check(call)
        except Exception as exc:
            failures += 1
            retry = guardrail.retry
            if is_final(retry, exc, failures):
                return GuardrailRefusal(guardrail=guardrail.name, error=cause_message(exc))
            await asyncio.sleep(retry_delay(retry, exc, failures).total_seconds())
            continue
        if not verdict.tripped:
            return None
        return GuardrailRefusal(guardrail=guardrail.name, reason=verdict.reason or "refused")
