"""Typed outputs as each provider asks for them (README "Typed outputs").

- Chat Completions: `response_format` `{"type": "json_schema", "json_schema": {...}}`.
- Responses: `text.format` `{"type": "json_schema", "name", "schema", "strict"}`.
- Anthropic: native structured outputs (`output_config.format`) on models that have them
  (Claude 4.5 and later, Opus 4.1); older models get a forced tool, `final_output`, whose input
  is the answer: `tool_choice` names it when the agent has no other tools, else is `any` (the
  model must call a tool: its own, or this one to answer). Its call comes back as the answer's
  text, so the workflow sees a plain final answer either way.
"""

from __future__ import annotations

import json
import re
from typing import Any

from durable_agent.wire import OUTPUT_TOOL, AssistantMessage, OutputFormat

# Anthropic models from before structured outputs: Claude 3.x, and Opus/Sonnet 4 (2025-05).
_ANTHROPIC_WITHOUT_NATIVE = re.compile(
    r"^claude-(3|instant|2)|^claude-(opus|sonnet)-4(-0|-2025\d+|$)"
)


def chat_response_format(output: OutputFormat) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": output.name,
            "schema": output.json_schema,
            "strict": output.strict,
        },
    }


def responses_text_format(output: OutputFormat) -> dict[str, Any]:
    return {
        "format": {
            "type": "json_schema",
            "name": output.name,
            "schema": output.json_schema,
            "strict": output.strict,
        }
    }


def anthropic_native(model: str) -> bool:
    """Whether an Anthropic model takes `output_config.format` (otherwise: the forced tool)."""
    return _ANTHROPIC_WITHOUT_NATIVE.search(model) is None


def anthropic_output(kwargs: dict[str, Any], output: OutputFormat, model: str) -> None:
    """Asks an Anthropic model for the typed answer, natively or by the forced tool."""
    if anthropic_native(model):
        kwargs["output_config"] = {"format": {"type": "json_schema", "schema": output.json_schema}}
        return
    tool = {
        "name": OUTPUT_TOOL,
        "description": f"Give your final answer ({output.name}) by calling this tool.",
        "input_schema": output.json_schema,
    }
    kwargs["tools"] = [*kwargs.get("tools", []), tool]
    others = len(kwargs["tools"]) > 1
    kwargs["tool_choice"] = {"type": "any"} if others else {"type": "tool", "name": OUTPUT_TOOL}


def forced_answer(message: AssistantMessage) -> AssistantMessage:
    """A `final_output` call as the answer's text (other calls beside it are dropped: the
    model has answered)."""
    answer = next((c for c in message.tool_calls if c.name == OUTPUT_TOOL), None)
    if answer is None:
        return message
    arguments = json.loads(answer.arguments or "{}")
    return message.model_copy(update={"content": json.dumps(arguments), "tool_calls": []})
