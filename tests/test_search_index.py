"""The run's search attributes are written when what they index changes, not every turn
(issue 18 item 1): counted in the history of real runs on the dev server."""

from __future__ import annotations

import base64
import json
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, RunState, ScriptedModel, tool
from durable_agent.wire import AGENT_STATUS, AGENT_TOKENS
from durable_agent.workflows.index import TOKENS_EVERY_TURNS

from .conftest import agent_client, calls, eventually, new_id
from .record_histories import HISTORIES, PREFIX
from .tools import ask_manager

TURNS = 20


@tool
def step(n: int) -> int:
    """Take a step.

    Args:
        n: Which.
    """
    return n


async def upserts(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The search attributes each `UpsertWorkflowSearchAttributes` event of the run wrote."""
    written = []
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            continue
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        written.append({k: json.loads(v.data) for k, v in fields.indexed_fields.items()})
    return written


async def test_a_20_turn_run_writes_its_search_attributes_four_times(
    dev_env: WorkflowEnvironment,
) -> None:
    """Was 22 (AgentTokens on every ~10% of growth). Now: the patch marker's own
    TemporalChangeVersion, AgentTokens at turns 10 and 20, and AgentStatus once, at the end. A
    plain activity tool never moves AgentStatus (running -> waiting -> running)."""
    script = [calls((f"c{n}", "step", {"n": n})) for n in range(1, TURNS)] + ["done"]
    agent = Agent("stepper", model=ScriptedModel("stepper", script), tools=[step])
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("stepper", "walk", workflow_id=new_id(), max_turns=TURNS)
        result = await handle.result()
    assert result.turns == TURNS
    written = await upserts(handle)
    assert written == [
        {"TemporalChangeVersion": ["index-on-change"]},
        {"AgentTokens": written[1]["AgentTokens"]},
        {"AgentTokens": result.usage.total_tokens},
        {"AgentStatus": "completed"},
    ], written
    assert TOKENS_EVERY_TURNS == 10
    described = await handle.describe()
    attributes = described.typed_search_attributes
    assert attributes.get(AGENT_TOKENS) == result.usage.total_tokens
    assert attributes.get(AGENT_STATUS) == RunState.COMPLETED.value


async def test_a_run_that_starts_to_wait_writes_its_tokens_with_its_status(
    dev_env: WorkflowEnvironment,
) -> None:
    """A parked run is found by its tokens as they are when it parks."""
    script = [calls(("c1", "ask_manager", {"question": "ok?"})), "thanks"]
    agent = Agent("asker", model=ScriptedModel("asker", script), tools=[ask_manager])
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("asker", "ask", workflow_id=new_id())

        async def waiting() -> bool:
            return (await client.status(handle.id)).state is RunState.WAITING_FOR_TOOLS

        await eventually(waiting)
        status = await client.status(handle.id)
        attributes = (await handle.describe()).typed_search_attributes
        assert attributes.get(AGENT_STATUS) == RunState.WAITING_FOR_TOOLS.value
        assert attributes.get(AGENT_TOKENS) == status.usage.total_tokens > 0
        await client.resolve(handle.id, "c1", "yes")
        result = await handle.result()
    written = await upserts(handle)
    assert [w.get("AgentStatus") for w in written if "AgentStatus" in w] == [
        "waiting_for_tools",
        "running",
        "completed",
    ]
    assert written[-1] == {"AgentStatus": "completed", "AgentTokens": result.usage.total_tokens}


def test_the_newest_recordings_take_the_index_on_change_rule() -> None:
    """So the replay corpus exercises this rule's branch, not only the earlier one's."""
    for name in (f"{PREFIX}-parallel.json", f"{PREFIX}-can-1.json", "everything-v4.json"):
        events = json.loads((HISTORIES / name).read_text())["events"]
        patches = [
            json.loads(base64.b64decode(payload["data"]))["id"]
            for e in events
            if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
            for payload in e["markerRecordedEventAttributes"]["details"]["patch-data"]["payloads"]
        ]
        assert "index-on-change" in patches, name
        assert "agent-tokens" not in patches, "the earlier rule's patch is not asked any more"
