"""The server's work a turn, by request: the dev server's own counters (its Prometheus
endpoint), read around each variant's throughput rounds.

Why: the server's CPU is about two thirds of a turn's (issue 18), so a loop is as cheap as the
requests it makes of the server. Counting them per variant shows which requests a turn costs
(workers' polls and completions, the server's own reads and writes of the run's state and of
its visibility record) and that a loop with one activity per call cannot make fewer than bare
does: beating it takes fewer round trips (local activities: fast mode).
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections import defaultdict

from faults.cluster import free_port

__all__ = ["ServerWork", "free_port", "scrape", "settled"]

_METRIC = re.compile(
    r"^(service_requests|persistence_requests|visibility_persistence_requests)\{([^}]*)\} (\S+)$"
)
_LABEL = re.compile(r'(\w+)="([^"]*)"')
PERSISTENCE = "persistence: "
VISIBILITY = "visibility persistence: "
SHOWN = 0.05
"""Requests a turn below this in every variant are left out of the table."""


def scrape(port: int) -> dict[str, float]:
    """Requests so far: each frontend operation (what workers and clients ask), and each
    operation of the history and visibility stores."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    counts: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match is None:
            continue
        name, labels, value = match[1], dict(_LABEL.findall(match[2])), float(match[3])
        if name == "service_requests":
            if labels.get("service_name") == "frontend":
                counts[labels.get("operation", "?")] += value
        else:
            store = VISIBILITY if name.startswith("visibility") else PERSISTENCE
            counts[store + labels.get("operation", "?")] += value
    return counts


async def settled(port: int) -> dict[str, float]:
    """Counts once the server has published its last completions: its metrics are reported
    on an interval, so a scrape right after a round misses that round's tail. Bounded."""
    reads = [await asyncio.to_thread(scrape, port)]
    for _ in range(20):
        await asyncio.sleep(1.0)
        reads.append(await asyncio.to_thread(scrape, port))
        # Unchanged over two intervals in a row: one equal pair can fall within one publish.
        if len(reads) >= 3 and len({_completions(r) for r in reads[-3:]}) == 1:
            break
    return reads[-1]


def _completions(counts: dict[str, float]) -> float:
    # Idle workers' long polls keep ending and restarting: completions alone tell a round's
    # tail from that.
    return sum(n for op, n in counts.items() if op.startswith("Respond"))


class ServerWork:
    """Requests a turn per variant, summed over the rounds it is given."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.turns: dict[str, int] = defaultdict(int)

    def add(self, name: str, before: dict[str, float], after: dict[str, float], turns: int) -> None:
        for op, n in after.items():
            self.requests[name][op] += n - before.get(op, 0.0)
        self.turns[name] += turns

    def per_turn(self, name: str) -> dict[str, float]:
        turns = self.turns[name]
        return {op: n / turns for op, n in self.requests[name].items()} if turns else {}

    def table(self, names: list[str]) -> list[str]:
        names = [n for n in names if self.turns[n]]
        if not names:
            return []
        rows = {n: self.per_turn(n) for n in names}
        ops = sorted(
            {op for r in rows.values() for op, v in r.items() if v >= SHOWN},
            key=lambda op: (op.startswith((PERSISTENCE, VISIBILITY)), op),
        )
        out = [
            "## Server requests a turn",
            "",
            "The dev server's request counters (its Prometheus endpoint) around rounds of 8 runs "
            "at once after the timed ones, divided by the turns run: what each loop asks of the "
            f"server (operations under {SHOWN} a turn in every variant left out).",
            "",
            "| request | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for op in ops:
            cells = " | ".join(f"{rows[n].get(op, 0.0):.2f}" for n in names)
            out.append(f"| {op} | {cells} |")
        return [*out, ""]
