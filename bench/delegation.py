"""Delegation (issue 13): what a call to a sub-agent costs against a call to a tool.

The same parent makes the same number of calls, one per turn, either to a tool activity or to a
sub-agent (a child `AgentWorkflow` whose scripted model answers at once). Both run on one worker
in this process, on the bench's dev server, repeats round-robin. A sub-agent call is a child
workflow: its start, its own workflow tasks and model activity, its result; the difference per
call is the price of a conversation, a history and a budget of its own.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from dataclasses import dataclass

from temporalio.client import Client

from durable_agent import Agent, AssistantMessage, ModelRequest, ScriptedModel, ToolCall, tool
from durable_agent.client import AgentClient
from durable_agent.worker import create_worker

from .measure import history_cost


@dataclass(frozen=True)
class Delegation:
    calls: int
    tool_ms: float
    """Median wall time a call, over the repeats (the parent's run divided by its calls)."""
    sub_agent_ms: float
    tool_bytes: int
    """History bytes a call (the parent's, and with sub-agents their children's too)."""
    sub_agent_bytes: int


@tool
def lookup(topic: str) -> str:
    """Look a topic up.

    Args:
        topic: What to look up.
    """
    return f"notes on {topic}"


def _parent(name: str, target: str, calls: int) -> Agent:
    def script(request: ModelRequest) -> AssistantMessage:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        if turn >= calls:
            return AssistantMessage(content="done")
        argument = {"topic": f"t{turn}"} if target == "lookup" else {"input": f"t{turn}"}
        call = ToolCall(id=f"c{turn}", name=target, arguments=json.dumps(argument))
        return AssistantMessage(tool_calls=[call])

    researcher = Agent("bench-researcher", model=ScriptedModel("bench-researcher", ["notes"]))
    tools = [lookup] if target == "lookup" else [researcher.as_tool(name=target)]
    return Agent(name, model=ScriptedModel(name, script), tools=tools)


async def measure(client: Client, calls: int, repeats: int) -> Delegation:
    queue = f"bench-delegation-{uuid.uuid4().hex[:8]}"
    agents = [_parent("bench-tool-parent", "lookup", calls)]
    agents.append(_parent("bench-sub-parent", "researcher", calls))
    times: dict[str, list[float]] = {a.name: [] for a in agents}
    sizes: dict[str, int] = {}
    runner = AgentClient(client, queue)
    async with create_worker(client, agents, task_queue=queue):
        for a in agents:  # warm: the first run of each pays imports and caches
            await (await runner.start(a.name, "go")).result()
        for _ in range(repeats):
            for a in agents:
                started = time.perf_counter()
                handle = await runner.start(a.name, "go")
                await handle.result()
                times[a.name].append((time.perf_counter() - started) / calls)
                size = (await history_cost(client, handle.id, handle.result_run_id)).bytes
                for turn in range(calls) if a.name == "bench-sub-parent" else ():
                    child = f"{handle.id}/{turn + 1}/c{turn}"  # as the workflow derives it
                    size += (await history_cost(client, child, await _run_id(client, child))).bytes
                sizes[a.name] = size // calls
    return Delegation(
        calls=calls,
        tool_ms=statistics.median(times["bench-tool-parent"]) * 1000,
        sub_agent_ms=statistics.median(times["bench-sub-parent"]) * 1000,
        tool_bytes=sizes["bench-tool-parent"],
        sub_agent_bytes=sizes["bench-sub-parent"],
    )


async def _run_id(client: Client, workflow_id: str) -> str | None:
    return (await client.get_workflow_handle(workflow_id).describe()).run_id


def table(result: Delegation) -> list[str]:
    ratio = result.sub_agent_ms / result.tool_ms
    return [
        "## Delegation: a sub-agent call against a tool call",
        "",
        f"One parent run making {result.calls} calls, one per turn (bench/delegation.py).",
        "",
        "| call | wall time a call | history a call |",
        "|---|---|---|",
        f"| tool activity | {result.tool_ms:.0f} ms | {result.tool_bytes / 1024:.1f} KB |",
        f"| sub-agent (child workflow, one model call) | {result.sub_agent_ms:.0f} ms "
        f"({ratio:.1f}x) | {result.sub_agent_bytes / 1024:.1f} KB (parent and child) |",
        "",
    ]
