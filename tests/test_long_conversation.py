"""A conversation far past Temporal's per-run limits: 300 turns with a 100 KB tool output each."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.converter import ExternalStorage
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ScriptedModel,
    ToolCall,
    ToolMessage,
    UserMessage,
    tool,
)
from durable_agent.client import AgentClient
from durable_agent.storage import LocalFileDriver, data_converter

from .conftest import agent_client, eventually

TURNS = 300
OUTPUT = 100 * 1024


@tool
def fetch_page(page: int) -> str:
    """Fetch a large page.

    Args:
        page: Which page.
    """
    return f"{page:06d}" + "x" * (OUTPUT - 6)


@pytest.mark.slow  # 28-54 s: 300 turns, 30 MB of history
async def test_300_turns_of_100kb_outputs_continue_as_new(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    storage = ExternalStorage(
        drivers=[LocalFileDriver(tmp_path)], payload_size_threshold=256 * 1024
    )
    client = await Client.connect(
        dev_env.client.service_client.config.target_host, data_converter=data_converter(storage)
    )
    script: list[str | AssistantMessage] = [
        AssistantMessage(
            tool_calls=[ToolCall(id=f"c{i}", name="fetch_page", arguments=json.dumps({"page": i}))]
        )
        for i in range(TURNS - 1)
    ]
    script.append("read them all")
    agent = Agent(
        "reader", model=ScriptedModel("reader", script), tools=[fetch_page], max_turns=TURNS
    )
    async with agent_client(client, agent, max_cached_workflows=10) as (agents, _):
        handle = await agents.start("reader", "read", continue_as_new_at_bytes=4_000_000)
        notes = [f"note {i}" for i in range(12)]
        for i, note in enumerate(notes):  # spread over the run's turns and its several runs
            await eventually(
                lambda i=i: _past_turn(agents, handle.id, 20 * (i + 1)),
                f"turn {20 * (i + 1)}",
                seconds=120,
            )
            await handle.signal("user_message", {"content": note})
        result = await asyncio.wait_for(handle.result(), timeout=240)
        pages = 0
        page = await agents.history(handle.id)
        while page.more:  # 30 MB of conversation, read in pages under the gRPC limit
            pages += 1
            page = await agents.history(handle.id, since=page.next)
        runs = [e async for e in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert result.final_text == "read them all"
    assert result.turns == TURNS
    outputs = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in outputs] == [f"c{i}" for i in range(TURNS - 1)]
    assert all(len(m.content) == OUTPUT for m in outputs)
    user = [m.content for m in result.messages if isinstance(m, UserMessage)]
    assert user == ["read", *notes], "every signal applied exactly once, in order"
    assert len(runs) >= 3, "the conversation continued as new more than once"
    assert pages > 10
    assert any(tmp_path.iterdir()), "large payloads went to external storage"  # noqa: ASYNC240


async def _past_turn(agents: AgentClient, workflow_id: str, turn: int) -> bool:
    try:
        return (await agents.status(workflow_id)).turn >= turn
    except (RPCError, WorkflowQueryFailedError):  # a run that has just continued as new
        return False
