"""(c) A misbehaving provider: runs of the `oracle` agent (the real OpenAI SDK, Chat
Completions) against `FaultyProvider`, whose first answer to every model call is a fault."""

from __future__ import annotations

import asyncio
import time
import uuid

from durable_agent.client import AgentClient

from .cluster import Workers, settle
from .provider import FaultyProvider
from .tally import Figures, Run


async def storm(
    agents: AgentClient, workers: Workers, provider: FaultyProvider, runs: int
) -> Figures:
    figures = Figures("c. provider faults")
    began = time.monotonic()

    async def one() -> Run:
        token = uuid.uuid4().hex[:10]
        prompt = f"case {token}: what does the oracle say?"
        run = Run(f"oracle-{token}", time.monotonic(), sent=[prompt])
        await agents.start("oracle", prompt, workflow_id=run.workflow_id)
        await settle(agents.client, run, 180)
        return run

    done = await asyncio.gather(*(one() for _ in range(runs)))
    figures.seconds = time.monotonic() - began
    figures.notes.append(
        f"{runs} runs of the `oracle` agent at once, 3 model calls each (two ask for a keyed"
        " tool), every call's first attempt faulty, the faults dealt round-robin"
    )
    figures.count_runs(list(done))
    figures.count_bodies(workers.log, {r.workflow_id for r in done})
    for call in provider.ledger.calls.values():
        kind = call.fault or "no fault"
        figures.faults[kind] = figures.faults.get(kind, 0) + 1
        if call.answered is not None:
            figures.latency.setdefault(kind, []).append(call.answered - call.first)
        else:
            figures.problems.append(f"a model call with {kind} was never answered")
    return figures
