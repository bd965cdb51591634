"""Guardrail activities: one activity type per guardrail (`guardrail.<name>`).

A function guardrail is called with the text or the tool call. An agent guardrail is one model
call of that agent (its instructions, the text as the user's message), asked for a
`GuardrailVerdict` in the provider's structured outputs and validated like any typed output;
an answer that does not validate fails the attempt, and Temporal retries it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_agent._output import Valid
from durable_agent.authoring._guardrails import Guardrail
from durable_agent.wire import GuardrailCall, GuardrailVerdict, ModelRequest, UserMessage

from .heartbeat import heartbeating
from .model import ModelActivities
from .providers import split_model


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
