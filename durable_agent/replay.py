"""Replay recorded histories against today's code: the test that stops a change from breaking
runs that are already open. Use it in your own test suite with your own agents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from temporalio.worker import Replayer

from .authoring import _registry
from .authoring._agent import Agent
from .storage import data_converter

_BUILD_ID = "durable-agent-replay"


def agent_replayer(agents: Iterable[Agent], **replayer_options: Any) -> Replayer:
    """A `Replayer` for `AgentWorkflow` that serves `agents`.

    The replayer runs workflows on its own task queue (`replay-<build id>`), so the agents are
    registered under that name rather than the queue the history was recorded on. It replays
    in Temporal's sandbox unless `workflow_runner` says otherwise: workers run the workflow
    unsandboxed, and the sandbox adds a check that it makes no non-deterministic call.
    """
    from durable_agent.workflows.agent_workflow import AgentWorkflow

    _registry.register(f"replay-{_BUILD_ID}", agents)
    replayer_options.setdefault("data_converter", data_converter())
    return Replayer(workflows=[AgentWorkflow], build_id=_BUILD_ID, **replayer_options)
