"""The run's search attributes (`AgentName`, `AgentStatus`, `AgentTokens`): what `temporal
workflow list --query` and `durable-agent list` filter on. Every upsert of the run is here.

Each upsert is a command in the run's history and a visibility write on the server (a billable
action on Temporal Cloud), so they are written when what they index changes, not every turn
(measured: a 20-turn run wrote 22 upserts under the earlier rule, `tests/test_search_index.py`
counts them now). `AgentStatus` is written on a transition of the run's state; `AgentTokens`
joins it when the run starts to wait or ends, and is otherwise written at most once every
`TOKENS_EVERY_TURNS` turns. Runs that began under the earlier rule (one `AgentTokens` upsert
per ~10% of growth) keep it: the `index-on-change` patch decides, once a run.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from durable_agent.wire import (
        AGENT_NAME,
        AGENT_STATUS,
        AGENT_TOKENS,
        ENDED,
        WAITING,
        RunState,
    )

TOKENS_ATTRIBUTE = "agent-tokens"
"""Patch id (the earlier rule): runs keep the `AgentTokens` search attribute."""
INDEX_ON_CHANGE = "index-on-change"
"""Patch id: search attributes are written when what they index changes (this module's rule)."""
TOKENS_EVERY_TURNS = 10
"""Between waits, a running run's `AgentTokens` lags at most this many turns behind."""


class SearchIndex:
    def __init__(self) -> None:
        self._status = RunState.RUNNING
        """What `AgentStatus` holds (or, before `start`, what a run starts as)."""
        self._tokens = 0
        """The tree's tokens as last told."""
        self._tokens_listed = 0
        self._turn_listed = 0
        self._on_change: bool | None = None

    def start(self, agent: str, turns: int) -> None:
        """Runs started by `AgentClient` (or carried over by continue-as-new) have both
        already: one history event less a run. `turns` is where a resumed run is."""
        self._turn_listed = turns
        current = workflow.info().typed_search_attributes
        if current.get(AGENT_NAME) != agent or current.get(AGENT_STATUS) != self._status:
            workflow.upsert_search_attributes(
                [AGENT_NAME.value_set(agent), AGENT_STATUS.value_set(self._status.value)]
            )

    def agent(self, name: str) -> None:
        """A handoff: another agent speaks."""
        workflow.upsert_search_attributes([AGENT_NAME.value_set(name)])

    def status(self, state: RunState) -> None:
        """The run's state moved; the run's tokens go with it when it waits or ends."""
        if state is self._status:
            return
        self._status = state
        updates: list[SearchAttributeUpdate[Any]] = [AGENT_STATUS.value_set(state.value)]
        settles = state in WAITING or state in ENDED
        if settles and self._tokens != self._tokens_listed and self._index_on_change():
            self._tokens_listed = self._tokens
            updates.append(AGENT_TOKENS.value_set(self._tokens))
        workflow.upsert_search_attributes(updates)

    def tokens(self, total: int, turn: int) -> None:
        """The tree's usage moved (a model call here, a report from below), at `turn`."""
        self._tokens = total
        if self._index_on_change():
            due = turn - self._turn_listed >= TOKENS_EVERY_TURNS
            if not due or total == self._tokens_listed:
                return
            self._turn_listed = turn
        elif not (total > self._tokens_listed * 1.1 and workflow.patched(TOKENS_ATTRIBUTE)):
            return  # the earlier rule: within 10% of current
        self._tokens_listed = total
        workflow.upsert_search_attributes([AGENT_TOKENS.value_set(total)])

    def _index_on_change(self) -> bool:
        """Asked once a run, where the two rules first differ: replaying a run recorded
        before this rule answers False, and the run keeps the earlier one."""
        if self._on_change is None:
            self._on_change = workflow.patched(INDEX_ON_CHANGE)
        return self._on_change
