"""The agent the telemetry tests trace and scrape, importable by a worker subprocess
(`durable-agent worker --agents tests.telemetry_agents:agents`).

One run covers every span and metric: two tool calls that succeed and one that fails,
a hook after every model call, then an approval (answered by update) and an external result
(answered by signal) waiting at once, then a final answer.
"""

from __future__ import annotations

import json

from temporalio.common import RetryPolicy

from durable_agent import (
    Agent,
    AssistantMessage,
    HookContext,
    HookResult,
    ScriptedModel,
    ToolCall,
    hook,
    tool,
)

from .tools import ask_manager

SECRET_PROMPT = "my card is 4111-1111-1111-1111"
"""The prompt of the run: no span attribute or metric label may carry it."""


@tool
def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city.
    """
    return f"sunny in {city}"


@tool(retry=RetryPolicy(maximum_attempts=1))
def flaky(city: str) -> str:
    """The weather, from a service that is down.

    Args:
        city: The city.
    """
    raise ConnectionError("the weather service is down")


@tool(requires_approval=True)
def refund(amount: int) -> str:
    """Refund money.

    Args:
        amount: Euros.
    """
    return f"refunded {amount} EUR"


@hook(name="telemetry_audit")
def audit(context: HookContext) -> HookResult | None:
    return None


def _calls(*specs: tuple[str, str, dict[str, object]]) -> AssistantMessage:
    return AssistantMessage(
        tool_calls=[ToolCall(id=i, name=n, arguments=json.dumps(a)) for i, n, a in specs]
    )


traced = Agent(
    "traced",
    model=ScriptedModel(
        "traced-model",
        [
            _calls(
                ("t1", "weather", {"city": "Paris"}),
                ("t2", "weather", {"city": "Oslo"}),
                ("t3", "flaky", {"city": "Rome"}),
            ),
            _calls(("r1", "refund", {"amount": 30}), ("m1", "ask_manager", {"question": "ok?"})),
            "Done.",
        ],
    ),
    tools=[weather, flaky, refund, ask_manager],
    hooks=[audit],
)

agents = [traced]
