"""The run's search attributes (`AgentName`, `AgentStatus`, `AgentTokens`): what `temporal
workflow list --query` and `durable-agent list` filter on. Every upsert of the run is here.

Each upsert is a command in the run's history and a visibility write on the server (a billable
action on Temporal Cloud).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agent.wire import AGENT_NAME, AGENT_STATUS, AGENT_TOKENS, RunState

TOKENS_ATTRIBUTE = "agent-tokens"
"""Patch id: runs keep the `AgentTokens` search attribute."""


class SearchIndex:
    def __init__(self) -> None:
        self._status = RunState.RUNNING
        self._tokens_listed = 0

    def start(self, agent: str, turns: int) -> None:
        """Runs started by `AgentClient` (or carried over by continue-as-new) have both
        already: one history event less a run."""
        current = workflow.info().typed_search_attributes
        if current.get(AGENT_NAME) != agent or current.get(AGENT_STATUS) != self._status:
            workflow.upsert_search_attributes(
                [AGENT_NAME.value_set(agent), AGENT_STATUS.value_set(self._status.value)]
            )

    def agent(self, name: str) -> None:
        """A handoff: another agent speaks."""
        workflow.upsert_search_attributes([AGENT_NAME.value_set(name)])

    def status(self, state: RunState) -> None:
        if state is not self._status:
            self._status = state
            workflow.upsert_search_attributes([AGENT_STATUS.value_set(state.value)])

    def tokens(self, total: int, turn: int) -> None:
        """Within 10% of the tree's usage: one upsert per ~10% of growth."""
        if total > self._tokens_listed * 1.1 and workflow.patched(TOKENS_ATTRIBUTE):
            self._tokens_listed = total
            workflow.upsert_search_attributes([AGENT_TOKENS.value_set(total)])
