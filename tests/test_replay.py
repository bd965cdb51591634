"""Replay recorded histories: a workflow change that would break open runs fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from durable_agent import Agent
from durable_agent.replay import agent_replayer

from .replay_agents import agents, lookup, triage

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_there_are_recorded_histories() -> None:
    assert HISTORIES


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "unsandboxed"])
async def test_recorded_history_replays(path: Path, sandboxed: bool) -> None:
    """Workers run unsandboxed (as here with False); the sandbox adds a check that the
    workflow makes no non-deterministic call."""
    options = {} if sandboxed else {"workflow_runner": UnsandboxedWorkflowRunner()}
    result = await agent_replayer(agents, **options).replay_workflow(load(path))
    assert result.replay_failure is None


async def test_replay_catches_a_changed_agent() -> None:
    """The guard works: the same history with a tool removed is refused as non-deterministic."""
    changed = Agent(
        "triage",
        model=triage.model,
        tools=[t for t in triage.tool_list if t is not lookup],
        handoffs=triage.handoffs,
    )
    with pytest.raises(NondeterminismError):
        await agent_replayer([changed]).replay_workflow(load(HISTORIES[0]))
