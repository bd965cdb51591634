"""Replay recorded histories: a workflow change that would break open runs fails here.

tests/histories/README.md says what the histories are and when to record new ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from durable_agent import Agent
from durable_agent.replay import agent_replayer

from .record_histories import PREFIX, SCENARIOS
from .replay_agents import agents, lookup, parallel, triage

HISTORY_DIR = Path(__file__).parent / "histories"
HISTORIES = sorted(HISTORY_DIR.glob("*.json"))
"""Each file is one run; a continue-as-new chain is one file per run."""


def load(path: Path) -> WorkflowHistory:
    """Under its recorded workflow id (children's ids derive from their parent's)."""
    recorded = json.loads(path.read_text())
    workflow_id = recorded.pop("workflowId", path.stem)
    return WorkflowHistory.from_json(workflow_id, recorded)


def without_lookup(agent: Agent) -> Agent:
    tools = [t for t in agent.tool_list if t is not lookup]
    return Agent(agent.name, model=agent.model, tools=tools, handoffs=agent.handoffs)


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


@pytest.mark.parametrize(
    ("history", "agent"),
    [("everything-v3.json", triage), (f"{PREFIX}-parallel.json", parallel)],
    ids=["everything", "corpus"],
)
async def test_replay_catches_a_changed_agent(history: str, agent: Agent) -> None:
    """The guard works: the same history with a tool removed is refused as non-deterministic."""
    with pytest.raises(NondeterminismError):
        await agent_replayer([without_lookup(agent)]).replay_workflow(load(HISTORY_DIR / history))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_has_its_recording(name: str) -> None:
    """A scenario added to the recorder without its recording fails here: record it with
    `python -m tests.record_histories NAME` and commit the file(s)."""
    if not SCENARIOS[name].several_runs:
        assert (HISTORY_DIR / f"{PREFIX}-{name}.json").exists()
        return
    pattern = re.compile(rf"{re.escape(PREFIX)}-{re.escape(name)}-(\d+)\.json")
    numbers = sorted(int(m[1]) for p in HISTORIES if (m := pattern.fullmatch(p.name)))
    assert numbers == list(range(1, len(numbers) + 1)), "runs numbered 1, 2... with no gap"
    assert len(numbers) >= 2, "a scenario of several runs has at least two"
