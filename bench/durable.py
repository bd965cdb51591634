"""The bench agent on durable-agent, in its default mode and its fast mode (local activities)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    ScriptedModel,
    ToolCall,
    tool,
)
from durable_agent.authoring._tool import external_tool

from .fake import TOOL_NAME, parse, tool_output, wants_tool


def _script(request: ModelRequest) -> AssistantMessage:
    first = next(m for m in request.messages if m.role == "user")
    turns, size = parse(first.content)
    turn = sum(1 for m in request.messages if m.role == "assistant")
    if wants_tool(turn, turns):
        call = ToolCall(id=f"c{turn}", name=TOOL_NAME, arguments=f'{{"size": {size}}}')
        return AssistantMessage(tool_calls=[call])
    return AssistantMessage(content="done")


def agent(fast: bool, heartbeats: bool = True) -> Agent:
    """The bench agent; `heartbeats=False` turns them off, to show what they cost a turn."""
    name = "bench-fast" if fast else ("bench" if heartbeats else "bench-no-heartbeats")

    @tool(name=TOOL_NAME, local=fast)
    async def fetch(size: int) -> str:
        """Return `size` bytes."""
        return tool_output(size)

    return Agent(
        name,
        model=ScriptedModel(name, _script),
        tools=[fetch],
        local_model=fast,
        max_turns=100_000,
        model_timeout=timedelta(seconds=30),
        # The whole conversation, as the bare loop sends it: these variants measure the loop's
        # orchestration side by side. The context window (on by default) would summarise a
        # fake 300-turn run with this fake model; bench/context_window.py measures it alone.
        context=None,
        **({} if heartbeats else {"heartbeat_timeout": None}),
    )


@external_tool()
def wait_here() -> str:
    """Waits for a signal."""
    raise NotImplementedError


def resume_agent() -> Agent:
    """Waits on an external call, then answers: for resume latency."""
    call = AssistantMessage(tool_calls=[ToolCall(id="w", name="wait_here")])
    return Agent(
        "bench-resume", model=ScriptedModel("bench-resume", [call, "done"]), tools=[wait_here]
    )


SLOW_CALL_SECONDS = 4.0
"""How long the crash-recovery agents' tool or model call takes: the worker is killed in it."""


class SlowProvider:
    """A model provider (`slow:<name>`) that thinks for `SLOW_CALL_SECONDS`, then answers."""

    async def complete(self, request: ModelRequest, model_name: str) -> ModelResponse:
        await asyncio.sleep(SLOW_CALL_SECONDS)
        return ModelResponse(message=AssistantMessage(content="thought it through"))


@tool
async def slow_step() -> str:
    """A step that takes a few seconds."""
    await asyncio.sleep(SLOW_CALL_SECONDS)
    return "step done"


def crash_agents() -> list[Agent]:
    """Every setting at its default: a run whose tool call takes a few seconds, and one whose
    model call does."""
    step = AssistantMessage(tool_calls=[ToolCall(id="s", name="slow_step")])
    return [
        Agent(
            "bench-slow-tool",
            model=ScriptedModel("bench-slow-tool", [step, "done"]),
            tools=[slow_step],
        ),
        Agent("bench-slow-model", model="slow:think"),
    ]
