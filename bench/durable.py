"""The bench agent on durable-agent, in its default mode and its fast mode (local activities)."""

from __future__ import annotations

from datetime import timedelta

from durable_agent import Agent, AssistantMessage, ModelRequest, ScriptedModel, ToolCall, tool
from durable_agent._tool import external_tool

from .fake import TOOL_NAME, parse, tool_output, wants_tool


def _script(request: ModelRequest) -> AssistantMessage:
    first = next(m for m in request.messages if m.role == "user")
    turns, size = parse(first.content)
    turn = sum(1 for m in request.messages if m.role == "assistant")
    if wants_tool(turn, turns):
        call = ToolCall(id=f"c{turn}", name=TOOL_NAME, arguments=f'{{"size": {size}}}')
        return AssistantMessage(tool_calls=[call])
    return AssistantMessage(content="done")


def agent(fast: bool) -> Agent:
    name = "bench-fast" if fast else "bench"

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
