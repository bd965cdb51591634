"""(b) Dev server restarts: sentinel runs, each waiting on two tools (2 s and 3 s) and on an
external call's signal, while the dev server is restarted twice on its state file (once
stopped with SIGTERM, once SIGKILLed). Each run also gets a user message between the restarts
and its external result after the second. The same timeline with no restart is the baseline."""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

from durable_agent import UserMessageSignal
from durable_agent.client import AgentClient

from .cluster import DevServer, Workers, settle, through_outages
from .tally import Figures, Run

PROMPT = "hold the line"


async def _workload(
    agents: AgentClient, workers: Workers, fault: Callable[[int], Awaitable[None]], count: int
) -> list[Run]:
    """Start the runs, then: fault 1, a user message to each, fault 2, each external result."""
    runs = [Run(f"sentinel-{uuid.uuid4().hex[:10]}", time.monotonic()) for _ in range(count)]
    for run in runs:
        run.started = time.monotonic()
        run.sent.append(PROMPT)
        await agents.start("sentinel", PROMPT, workflow_id=run.workflow_id)
    await asyncio.sleep(1.0)  # the tools are running, the external call waits
    await fault(1)
    for i, run in enumerate(runs):
        text = f"are you still there, {run.workflow_id}?"
        handle = agents.handle(run.workflow_id)
        await through_outages(
            partial(handle.signal, "user_message", UserMessageSignal(content=text))
        )
        run.sent.append(text)
        workers.keep_alive()
        if i == count // 2:
            await fault(2)  # the second restart lands while messages are being sent
    for run in runs:
        await through_outages(partial(agents.resolve, run.workflow_id, "x1", "yes, here"))

    async def finish(run: Run) -> None:
        await settle(agents.client, run, 120)

    await asyncio.gather(*map(finish, runs))
    return runs


async def storm(agents: AgentClient, workers: Workers, server: DevServer, runs: int) -> Figures:
    figures = Figures("b. dev server restarts")
    began = time.monotonic()

    async def no_fault(_: int) -> None:
        await asyncio.sleep(0.5)

    baseline = await _workload(agents, workers, no_fault, runs)
    downtime: list[float] = []

    async def restart(n: int) -> None:
        stopped = time.monotonic()
        server.stop(signal.SIGTERM if n == 1 else signal.SIGKILL)
        await server.start()
        downtime.append(time.monotonic() - stopped)

    stormed = await _workload(agents, workers, restart, runs)
    figures.seconds = time.monotonic() - began
    figures.faults = {"restart after SIGTERM": 1, "restart after SIGKILL": 1}
    figures.count_runs(stormed)
    figures.count_bodies(workers.log, {r.workflow_id for r in stormed})
    normal = statistics.median(r.seconds for r in baseline if r.seconds is not None)
    figures.latency["run vs. the no-restart baseline"] = [
        r.seconds - normal for r in stormed if r.seconds is not None and r.outcome == "completed"
    ]
    figures.latency["server down (stop to accepting)"] = downtime
    lost_baseline = [r for r in baseline if r.outcome != "completed"]
    if lost_baseline:
        figures.problems.append(f"{len(lost_baseline)} baseline runs did not complete")
    figures.notes.append(
        f"{runs} runs, median {normal:.1f} s with no restart; workers that died on their own"
        f" and were started again: {workers.replaced}"
    )
    return figures
