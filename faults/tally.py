"""What a storm counts: runs, messages, results per tool_call_id, bodies run twice, latency."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from durable_agent import AssistantMessage, Message, ToolMessage, UserMessage

from . import journal

RAW_STARTS = ("work_started", "job_started", "pay_started")
"""Log kinds that mark a body starting with no key to check (the raw count)."""
KEYED_EFFECTS = ("keyed_effect", "job_effect", "pay_effect")
"""Log kinds that mark a keyed side effect applied (the idempotency-key pattern)."""


@dataclass
class Run:
    workflow_id: str
    started: float
    ended: float | None = None
    outcome: str = "stuck"
    messages: list[Message] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    """User messages the server accepted for this run (signal or update)."""
    unsure: list[str] = field(default_factory=list)
    """User messages whose update failed at the RPC level: the client cannot tell whether the
    run took them, so it must not count on either."""

    @property
    def seconds(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


def unpaired(messages: list[Message]) -> list[str]:
    """tool_call_ids with other than exactly one result, and results of no call."""
    calls = [c.id for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls]
    results = Counter(m.tool_call_id for m in messages if isinstance(m, ToolMessage))
    bad = [c for c in dict.fromkeys(calls) if results[c] != 1 or calls.count(c) != 1]
    return bad + [r for r in results if r not in calls]


def lost(run: Run) -> list[str]:
    """User messages sent to the run that are not in its conversation exactly once."""
    seen = Counter(m.content for m in run.messages if isinstance(m, UserMessage))
    return [text for text in run.sent if seen[text] != 1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


@dataclass
class Figures:
    storm: str
    started: int = 0
    completed: int = 0
    messages_sent: int = 0
    messages_lost: int = 0
    unpaired: int = 0
    raw_repeats: int = 0
    """Calls of tools with no key whose body started more than once."""
    keyed_repeats: int = 0
    """Keyed side effects applied more than once (the pattern's promise: 0)."""
    keyed_calls: int = 0
    unsure_sent: int = 0
    unsure_delivered: int = 0
    """Updates the client saw fail at the RPC level whose message is in the run anyway."""
    error_results: int = 0
    """Tool results that are errors (retries used up, a deadline, a rejection): not lost, but
    the model was told the call failed."""
    latency: dict[str, list[float]] = field(default_factory=dict)
    """Extra seconds per fault kind."""
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Runs not completed, lost messages, unpaired ids: what the storm must not show."""
    faults: dict[str, int] = field(default_factory=dict)
    """How many faults of each kind were injected."""
    seconds: float = 0.0

    def count_runs(self, runs: list[Run]) -> None:
        self.started += len(runs)
        for run in runs:
            if run.outcome == "completed":
                self.completed += 1
            else:
                self.problems.append(f"{run.workflow_id}: {run.outcome}")
            self.messages_sent += len(run.sent)
            seen = Counter(m.content for m in run.messages if isinstance(m, UserMessage))
            self.unsure_sent += len(run.unsure)
            self.unsure_delivered += sum(1 for text in run.unsure if seen[text])
            self.problems += [
                f"{run.workflow_id}: message {text!r} is there {seen[text]} times"
                for text in run.unsure
                if seen[text] > 1
            ]
            for text in lost(run):
                self.messages_lost += 1
                self.problems.append(f"{run.workflow_id}: message {text!r} not there exactly once")
            self.error_results += sum(
                1 for m in run.messages if isinstance(m, ToolMessage) and m.is_error
            )
            for call_id in unpaired(run.messages):
                self.unpaired += 1
                self.problems.append(f"{run.workflow_id}: {call_id} has not exactly one result")

    def count_bodies(self, log: Path, workflow_ids: set[str]) -> None:
        lines = [line for line in journal.read(log) if line["wf"] in workflow_ids]
        starts = Counter((x["wf"], x["id"]) for x in lines if x["kind"] in RAW_STARTS)
        effects = Counter((x["wf"], x["id"]) for x in lines if x["kind"] in KEYED_EFFECTS)
        self.raw_repeats += sum(1 for n in starts.values() if n > 1)
        self.keyed_repeats += sum(1 for n in effects.values() if n > 1)
        self.keyed_calls += len(effects)
        if self.keyed_repeats:
            self.problems.append(f"{self.keyed_repeats} keyed side effects applied twice")

    @property
    def ok(self) -> bool:
        return not self.problems and self.started == self.completed
