"""The loop on the time-skipping server with a scripted model."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AgentRunInput,
    AgentRunResult,
    AssistantMessage,
    ScriptedModel,
    ToolCall,
    ToolMessage,
    tool,
)
from workflows.agent_workflow import AgentWorkflow

from .conftest import new_id, serving


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


def calls(*specs: tuple[str, str, str]) -> AssistantMessage:
    return AssistantMessage(tool_calls=[ToolCall(id=i, name=n, arguments=a) for i, n, a in specs])


async def test_parallel_tool_calls_are_answered_in_call_order(
    time_env: WorkflowEnvironment,
) -> None:
    model = ScriptedModel(
        "adder",
        [
            calls(("c1", "add", '{"a": 1, "b": 2}'), ("c2", "add", '{"a": 3, "b": 4}')),
            "3 and 7",
        ],
    )
    agent = Agent("adder", model=model, tools=[add])
    async with serving(time_env.client, agent) as worker:
        result = await time_env.client.execute_workflow(
            AgentWorkflow.run,
            AgentRunInput(agent="adder", prompt="add"),
            id=new_id(),
            task_queue=worker.task_queue,
            result_type=AgentRunResult,
        )
    assert result.final_text == "3 and 7"
    tool_messages = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert [(m.tool_call_id, m.content) for m in tool_messages] == [("c1", "3"), ("c2", "7")]
    assert result.turns == 2
    assert result.usage.requests == 2
