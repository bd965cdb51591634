"""Sub-agents as child workflows, usage rolled up the tree, and budgets over the whole tree."""

from __future__ import annotations

import asyncio
import json
import subprocess

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    Budget,
    ModelRequest,
    ModelResponse,
    RunState,
    ScriptedModel,
    ToolMessage,
    Usage,
    tool,
)
from durable_agent.client import AgentClient

from .conftest import agent_client, binary, calls, eventually, new_id
from .helpers import wait_pending
from .tools import RUNS


def task(text: str) -> dict[str, str]:
    return {"input": text}


def tree() -> Agent:
    """planner -> researcher (twice, in parallel) and coder; researcher -> fetcher: depth 3."""
    fetcher = Agent("fetcher", model=ScriptedModel(new_id(), ["fetched: 3 sources"]))
    researcher = Agent(
        "researcher",
        model=ScriptedModel(
            new_id(),
            [calls(("r1", "fetcher", task("find sources"))), "research notes from 3 sources"],
        ),
        tools=[fetcher.as_tool()],
    )
    coder = Agent("coder", model=ScriptedModel(new_id(), ["def answer(): return 42"]))
    return Agent(
        "planner",
        model=ScriptedModel(
            new_id(),
            [
                calls(
                    ("p1", "researcher", task("history of X")),
                    ("p2", "researcher", task("state of the art of X")),
                    ("p3", "coder", task("write answer()")),
                ),
                "plan done",
            ],
        ),
        tools=[researcher.as_tool(), coder.as_tool()],
    )


async def model_usage(client: Client, workflow_id: str) -> Usage:
    """The sum of the usage every model activity of one run returned, read from its history."""
    total = Usage()
    converter = client.data_converter
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            payloads = event.activity_task_completed_event_attributes.result.payloads
            (value,) = await converter.decode(payloads, [object])
            if isinstance(value, dict) and "message" in value and "usage" in value:
                total = total + ModelResponse.model_validate(value).usage
    return total


async def tree_ids(client: AgentClient, root: str) -> list[str]:
    """The root and every run below it, found through the AgentParent search attribute."""
    found, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [w.id async for w in client.list(f"AgentParent = '{parent}'")]
        found += children
        frontier += children
    return found


async def test_sub_agents_run_as_child_workflows_and_their_usage_adds_up(
    dev_env: WorkflowEnvironment,
) -> None:
    planner = tree()
    async with agent_client(dev_env.client, planner) as (client, _):
        handle = await client.start("planner", "work on X")
        result = await handle.result()
        root = handle.id
        expected = [root, f"{root}/1/p1", f"{root}/1/p2", f"{root}/1/p3"]
        expected += [f"{root}/1/p1/1/r1", f"{root}/1/p2/1/r1"]

        async def listed() -> bool:
            return sorted(await tree_ids(client, root)) == sorted(expected)

        await eventually(listed, "the tree in the visibility store")
        usages = [await model_usage(dev_env.client, run) for run in expected]
    assert result.final_text == "plan done"
    answers = {m.tool_call_id: m for m in result.messages if isinstance(m, ToolMessage)}
    assert answers["p1"].content == answers["p2"].content == "research notes from 3 sources"
    assert answers["p3"].content == "def answer(): return 42"
    assert not any(m.is_error for m in answers.values())
    # Exactly: every model call of the tree (6 runs, 9 calls) is in the root's usage, once.
    total = Usage()
    for usage in usages:
        total = total + usage
    assert total.requests == 9
    assert result.usage == total


async def test_the_temporal_cli_follows_the_tree(dev_env: WorkflowEnvironment) -> None:
    async with agent_client(dev_env.client, tree()) as (client, _):
        handle = await client.start("planner", "work on X")
        await handle.result()

        async def listed_by_cli() -> bool:
            out = await asyncio.to_thread(
                subprocess.run,
                [
                    binary("temporal"),
                    "workflow",
                    "list",
                    "--address",
                    dev_env.client.service_client.config.target_host,
                    "--query",
                    f"AgentParent = '{handle.id}'",
                    "--output",
                    "json",
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            out = out.stdout
            ids = sorted(json.loads(line)["execution"]["workflowId"] for line in _records(out))
            return ids == sorted(f"{handle.id}/1/{c}" for c in ("p1", "p2", "p3"))

        await eventually(listed_by_cli, "the children listed by `temporal workflow list`")


def _records(out: str) -> list[str]:
    """`temporal workflow list -o json` prints a JSON array (or nothing)."""
    text = out.strip()
    return [json.dumps(r) for r in json.loads(text)] if text else []


@tool(requires_approval=True)
def deploy(target: str) -> str:
    """Deploy.

    Args:
        target: Where.
    """
    RUNS["deploy"].append(target)
    return f"deployed to {target}"


def approving_tree() -> Agent:
    deployer = Agent(
        "deployer",
        model=ScriptedModel(new_id(), [calls(("d1", "deploy", {"target": "prod"})), "done"]),
        tools=[deploy],
    )
    return Agent(
        "lead",
        model=ScriptedModel(new_id(), [calls(("l1", "deployer", task("ship it"))), "shipped"]),
        tools=[deployer.as_tool()],
    )


async def test_a_childs_waiting_call_is_listed_and_answered_from_the_parent(
    dev_env: WorkflowEnvironment,
) -> None:
    async with agent_client(dev_env.client, approving_tree()) as (client, _):
        handle = await client.start("lead", "ship")
        (pending,) = await wait_pending(client, handle.id, 1)
        assert pending.tool_call_id == "d1" and pending.run == f"{handle.id}/1/l1"
        assert (await client.status(handle.id)).pending == 1
        decided = await client.decide(handle.id, "d1", True, digest=pending.digest)
        result = await handle.result()
    assert decided.detail == "approved"
    assert result.final_text == "shipped"
    assert RUNS["deploy"] == ["prod"]


async def test_cancelling_the_parent_cancels_its_children(dev_env: WorkflowEnvironment) -> None:
    async with agent_client(dev_env.client, approving_tree()) as (client, _):
        handle = await client.start("lead", "ship")
        await wait_pending(client, handle.id, 1)
        child = f"{handle.id}/1/l1"
        await client.cancel(handle.id)
        result = await handle.result()
        child_result = await asyncio.wait_for(client.result(child), 30)
    assert result.outcome == "cancelled"
    assert child_result.outcome == "cancelled"
    assert [p.tool_call_id for p in child_result.pending] == ["d1"]
    assert RUNS["deploy"] == []


async def test_a_failed_child_is_an_error_result_for_the_model(
    dev_env: WorkflowEnvironment,
) -> None:
    broken = Agent("broken", model=ScriptedModel(new_id(), []))  # no reply: its run fails
    seen: list[ModelRequest] = []

    def script(request: ModelRequest) -> str | AssistantMessage:
        seen.append(request)
        return calls(("b1", "broken", task("try"))) if len(seen) == 1 else "handled"

    boss = Agent("boss", model=ScriptedModel(new_id(), script), tools=[broken.as_tool()])
    async with agent_client(dev_env.client, boss) as (client, _):
        result = await (await client.start("boss", "go")).result()
    answer = next(m for m in result.messages if isinstance(m, ToolMessage))
    assert answer.is_error and answer.content.startswith("the broken agent failed: model call")
    assert result.final_text == "handled"


async def test_bad_sub_agent_arguments_go_back_to_the_model(dev_env: WorkflowEnvironment) -> None:
    helper = Agent("helper", model=ScriptedModel(new_id(), ["ok"]))
    boss = Agent(
        "boss2",
        model=ScriptedModel(new_id(), [calls(("h1", "helper", "{not json")), "fine"]),
        tools=[helper.as_tool()],
    )
    async with agent_client(dev_env.client, boss) as (client, _):
        result = await (await client.start("boss2", "go")).result()
    answer = next(m for m in result.messages if isinstance(m, ToolMessage))
    assert answer.is_error and "Fix the arguments and call helper again" in answer.content


async def test_a_budget_stops_new_model_calls_across_the_tree(
    dev_env: WorkflowEnvironment,
) -> None:
    planner = tree()
    async with agent_client(dev_env.client, planner) as (client, _):
        handle = await client.start("planner", "work on X", budget=Budget(max_model_calls=4))
        result = await handle.result()
        status = await client.status(handle.id)
        calls_made = sum(
            [
                (await model_usage(dev_env.client, run)).requests
                for run in await _runs(client, handle.id)
            ]
        )
    assert result.outcome == "budget_exceeded"
    assert status.state is RunState.BUDGET_EXCEEDED
    assert result.usage.requests == calls_made
    # Exactly 4, however busy the machine: the planner's call leaves 3, which its three children
    # share (one call each); the researchers' fetchers get a share of 0 and make none. (Before
    # shares, each child started with all 3 and was stopped by signal: 7 calls seen under load.)
    assert calls_made == 4, calls_made


async def _runs(client: AgentClient, root: str) -> list[str]:
    prefix = f"{root}/"
    found = [root]
    async for run in client.list(f"WorkflowId STARTS_WITH '{prefix}'"):
        found.append(run.id)
    return found


async def test_token_totals_are_a_search_attribute(dev_env: WorkflowEnvironment) -> None:
    async with agent_client(dev_env.client, tree()) as (client, _):
        handle = await client.start("planner", "work on X")
        result = await handle.result()

        async def listed() -> bool:
            query = f"WorkflowId = '{handle.id}' AND AgentTokens >= {result.usage.total_tokens}"
            return [w.id async for w in client.list(query)] == [handle.id]

        await eventually(listed, "AgentTokens on the root run")
