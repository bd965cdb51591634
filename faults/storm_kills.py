"""(a) Worker kills: 20 concurrent crew runs (tools of 0.1-5 s) on 3 worker processes, one
SIGKILLed at random every few seconds and replaced at once, for `seconds`; new runs start as
runs end, so 20 are in flight while the kills go on."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict

from durable_agent.client import AgentClient

from . import journal
from .agents import CREW_NOMINAL, CREW_TURNS
from .cluster import Workers, settle
from .tally import Figures, Run

CONCURRENT = 20
KILL_EVERY = (3.0, 6.0)
"""Seconds between kills, drawn uniformly."""
DURATIONS = {
    f"t{turn}-{i}": seconds
    for turn, calls in enumerate(CREW_TURNS)
    for i, (_, seconds) in enumerate(calls)
}


async def storm(agents: AgentClient, workers: Workers, seconds: float, seed: int) -> Figures:
    figures = Figures("a. worker SIGKILLs")
    rng = random.Random(seed)
    runs: list[Run] = []
    began = time.monotonic()
    stop_at = began + seconds
    prompt = "work through your turns"
    skipped = [0]

    async def one_after_another() -> None:
        # The last runs start a run's length before the kills stop: kills cover their lives.
        while time.monotonic() < stop_at - CREW_NOMINAL:
            run = Run(f"crew-{uuid.uuid4().hex[:10]}", time.monotonic(), sent=[prompt])
            runs.append(run)
            await agents.start("crew", prompt, workflow_id=run.workflow_id)
            await settle(agents.client, run, 240)

    async def killer() -> None:
        await asyncio.sleep(1.0)
        while time.monotonic() < stop_at:
            if await workers.kill_one(rng, agents.client) is None:
                skipped[0] += 1
                await asyncio.sleep(0.5)
                continue
            await asyncio.sleep(rng.uniform(*KILL_EVERY))

    await asyncio.gather(killer(), *(one_after_another() for _ in range(CONCURRENT)))
    figures.seconds = time.monotonic() - began
    figures.faults = {"SIGKILL": len(workers.kills)}
    figures.count_runs(runs)
    figures.count_bodies(workers.log, {r.workflow_id for r in runs})
    figures.latency = call_delays(workers, {r.workflow_id for r in runs})
    if figures.error_results:  # the crew's tools never fail on their own: only kills could
        figures.problems.append(
            f"{figures.error_results} tool results were errors: kills used up tools' attempts"
        )
    durations = [r.seconds for r in runs if r.seconds is not None and r.outcome == "completed"]
    figures.latency["run over its nominal tool time"] = [d - CREW_NOMINAL for d in durations]
    figures.notes.append(
        f"{len(runs)} runs of 3 turns ({CREW_NOMINAL:.0f} s of tools each when nothing fails);"
        f" {len(workers.kills)} kills over {seconds:.0f} s (a kill waits until at least two"
        f" workers poll: it was put off {skipped[0]} times by half a second)"
    )
    return figures


def call_delays(workers: Workers, workflow_ids: set[str]) -> dict[str, list[float]]:
    """For each call a kill interrupted: kill to the retry's start, and what the kill added to
    the call (its end, less its first start and its own duration)."""
    by_call: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
    for line in journal.read(workers.log):
        if line["wf"] in workflow_ids:
            by_call[(line["wf"], line["id"])].append(line)
    to_retry: list[float] = []
    added: list[float] = []
    for (_, call_id), lines in by_call.items():
        for kill_time, pid in workers.kills:
            interrupted = [
                x
                for x in lines
                if x["pid"] == pid
                and str(x["kind"]).endswith("_started")
                and float(str(x["t"])) < kill_time
            ]
            finished_there = any(
                x["pid"] == pid and str(x["kind"]).endswith("_done") for x in lines
            )
            if not interrupted or finished_there:
                continue
            later = [float(str(x["t"])) for x in lines if float(str(x["t"])) > kill_time]
            ends = [float(str(x["t"])) for x in lines if str(x["kind"]).endswith("_done")]
            if later:
                to_retry.append(min(later) - kill_time)
            first = min(float(str(x["t"])) for x in lines)
            if ends:
                added.append(max(ends) - first - DURATIONS[call_id])
    return {"kill to the retry's start": to_retry, "added to an interrupted call": added}
