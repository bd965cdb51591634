"""Which agents a worker serves, looked up by the workflow.

The workflow sandbox passes this module through, so the registry filled by the worker outside
the sandbox is the one workflow code reads. It is keyed by task queue so that several workers
in one process (tests, multi-tenant workers) can serve different agents.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._agent import Agent, handoff_graph

_agents: dict[str, dict[str, Agent]] = {}


class UnknownAgentError(LookupError):
    pass


def register(task_queue: str, agents: Iterable[Agent]) -> dict[str, Agent]:
    """Register `agents` and every agent they hand off to; return them by name. Two different
    agents with one name raise `ValueError` naming where each was found."""
    by_name = handoff_graph(agents)
    _agents[task_queue] = by_name
    return by_name


def lookup(task_queue: str, name: str) -> Agent:
    agents = _agents.get(task_queue, {})
    try:
        return agents[name]
    except KeyError:
        known = ", ".join(sorted(agents)) or "none"
        raise UnknownAgentError(f"unknown agent {name!r} (this worker serves: {known})") from None
