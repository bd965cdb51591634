"""The bench agent on Temporal's OpenAI Agents integration (bench-only dependencies)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin
from temporalio.openai_agents.testing import ResponseBuilders, TestModelProvider

with workflow.unsafe.imports_passed_through():
    from agents import Agent, Model, ModelResponse, Runner, set_tracing_disabled
    from temporalio.openai_agents import workflow as agents_workflow

    from .fake import TOOL_NAME, parse, tool_output, wants_tool


@activity.defn(name=TOOL_NAME)
async def fetch(size: int) -> str:
    """Return `size` bytes."""
    return tool_output(size)


class BenchModel(Model):
    """Reads the turn from the input it is given, like a real model would."""

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        text = json.dumps(input, default=str)
        turns, size = parse(text)
        turn = text.count('"function_call_output"')
        if wants_tool(turn, turns):
            return ResponseBuilders.tool_call(
                json.dumps({"size": size}), TOOL_NAME, call_id=f"c{turn}"
            )
        return ResponseBuilders.output_message("done")

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@workflow.defn(name="AnchorLoop")
class AnchorLoop:
    @workflow.run
    async def run(self, turns: int, size: int) -> str:
        agent = Agent(
            name="bench",
            instructions="Fetch until done.",
            tools=[
                agents_workflow.activity_as_tool(
                    fetch, start_to_close_timeout=timedelta(seconds=30)
                )
            ],
        )
        result = await Runner.run(agent, f"turns={turns} size={size}", max_turns=turns + 1)
        return str(result.final_output)


def plugin() -> OpenAIAgentsPlugin:
    return OpenAIAgentsPlugin(
        model_params=ModelActivityParameters(start_to_close_timeout=timedelta(seconds=30)),
        model_provider=TestModelProvider(BenchModel()),
    )


async def connect(target: str) -> Client:
    set_tracing_disabled(True)  # no trace export: the machine is offline and it is not measured
    return await Client.connect(target, plugins=[plugin()])
