"""Parked runs (issue 18, item 2): runs waiting days on an external tool or a person must cost
a worker nothing past its workflow cache.

One `durable-agent worker` process, as deployed (its defaults: a cache of 1,000 runs, the
sticky timeout 1 s), on the dev server with the project's settings. Runs of `bench-resume`
(one external call, then "done") are started until 1,000 wait on their call, then until
10,000 do; the worker's resident memory is read at each. Then every run gets its result by the
`tool_result` signal and each must complete with "done": none lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client

from durable_agent.client import AgentClient
from durable_agent.devserver import start_embedded
from durable_agent.wire import RunState, Signal, ToolResultSignal
from durable_agent.worker import READY_FILE_VARIABLE

ROOT = Path(__file__).resolve().parent.parent
FLAT = 1.2
"""What "memory flat" allows between the first and the last level: the cache is full at 1,000."""
AGENT = "bench-resume"
CALL_ID = "w"  # bench.durable.resume_agent's one call
STARTS_AT_ONCE = 50
"""Client requests in flight at a time: enough to keep the worker busy, few enough that the
client's own CPU on a 2-core machine does not starve it."""


@dataclass
class Level:
    runs: int
    park_seconds: float
    """From the first start of this level's new runs until all of them wait on their call."""
    rss_mb: float
    """The worker's resident memory once they all wait."""


@dataclass
class Parked:
    levels: list[Level] = field(default_factory=list)
    resolve_seconds: float = 0.0
    completed: int = 0
    lost: list[str] = field(default_factory=list)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _worker(address: str, queue: str, ready: Path) -> subprocess.Popen[bytes]:
    """`durable-agent worker` as a user starts it, with no DURABLE_AGENT_* settings of ours but
    the readiness file, which says when it polls."""
    settings = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_AGENT_")}
    return subprocess.Popen(
        [
            *(str(Path(sys.executable).parent / "durable-agent"), "worker"),
            *("--agents", "bench.durable:resume_agent", "--address", address),
            *("--task-queue", queue),
        ],
        cwd=ROOT,
        env={**settings, READY_FILE_VARIABLE: str(ready)},
        stderr=subprocess.DEVNULL,  # its warnings are not the measurement
    )


async def _bounded(n: int, work: Callable[[int], Awaitable[None]]) -> None:
    """Run `work(i)` for i in range(n), STARTS_AT_ONCE at a time."""
    limit = asyncio.Semaphore(STARTS_AT_ONCE)

    async def one(i: int) -> None:
        async with limit:
            await work(i)

    await asyncio.gather(*(one(i) for i in range(n)))


async def _waiting(client: Client, queue: str) -> int:
    query = f"TaskQueue = '{queue}' AND AgentStatus = '{RunState.WAITING_FOR_TOOLS.value}'"
    return (await client.count_workflows(query)).count


async def _until_waiting(client: Client, queue: str, runs: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while await _waiting(client, queue) < runs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{runs} runs did not all park within {seconds:.0f} s")
        await asyncio.sleep(0.5)


async def measure(levels: tuple[int, ...] = (1000, 10000)) -> Parked:
    env = await start_embedded(ui=False)
    queue = f"parked-{uuid.uuid4().hex[:8]}"
    ids = [f"parked-{queue}-{i}" for i in range(max(levels))]
    ready = Path(tempfile.mkdtemp()) / "ready"
    worker = _worker(env.client.service_client.config.target_host, queue, ready)
    result = Parked()
    try:
        agents = AgentClient(env.client, queue)
        for _ in range(1200):  # a minute at most, on a loaded machine
            if ready.exists() or worker.poll() is not None:
                break
            await asyncio.sleep(0.05)
        if not ready.exists():
            raise RuntimeError("the worker did not start polling")

        parked = 0
        for runs in levels:
            began, first = time.monotonic(), parked

            async def start(i: int, first: int = first) -> None:
                await agents.start(AGENT, "wait", workflow_id=ids[first + i])

            await _bounded(runs - first, start)
            parked = runs
            await _until_waiting(env.client, queue, runs, seconds=max(120.0, runs * 0.2))
            result.levels.append(Level(runs, time.monotonic() - began, rss_mb(worker.pid)))

        began = time.monotonic()
        answer = ToolResultSignal(tool_call_id=CALL_ID, content="done waiting")

        async def resolve(i: int) -> None:
            await env.client.get_workflow_handle(ids[i]).signal(Signal.TOOL_RESULT.value, answer)

        ids = ids[:parked]
        await _bounded(len(ids), resolve)

        async def outcome(i: int) -> None:
            handle = agents.handle(ids[i])
            try:
                run = await asyncio.wait_for(handle.result(), timeout=max(120.0, len(ids) * 0.2))
                if run.final_text == "done":
                    result.completed += 1
                    return
            except Exception:  # a run that failed or never ended is lost: a result, not a crash
                pass
            result.lost.append(ids[i])

        await _bounded(len(ids), outcome)
        result.resolve_seconds = time.monotonic() - began
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        await env.shutdown()
    return result


def table(result: Parked) -> list[str]:
    rows = [
        "## Parked runs: one worker, runs waiting on an external tool (issue 18)",
        "",
        "One `durable-agent worker` as deployed (workflow cache 1,000 runs, sticky timeout 1 s);"
        " each run waits on one external call; all resolved by the `tool_result` signal "
        "(bench/parked.py).",
        "",
        "| runs parked | time to park | worker RSS |",
        "|---|---|---|",
    ]
    rows += [
        f"| {lv.runs:,} | {lv.park_seconds:.1f} s | {lv.rss_mb:.0f} MB |" for lv in result.levels
    ]
    total = result.levels[-1].runs if result.levels else 0
    rows += [
        "",
        f"Resolved all {total:,} by signal in {result.resolve_seconds:.1f} s: "
        f"{result.completed:,} completed, {len(result.lost)} lost.",
    ]
    if len(result.levels) > 1:
        first, last = result.levels[0], result.levels[-1]
        flat = last.rss_mb <= FLAT * first.rss_mb
        rows += [
            "",
            f"Goal: memory flat from {first.runs:,} to {last.runs:,} parked runs (at most "
            f"{FLAT:.1f}x) and none lost: {'met' if flat and not result.lost else 'not met'} "
            f"({last.rss_mb / first.rss_mb:.2f}x, {len(result.lost)} lost).",
        ]
    return [*rows, ""]


if __name__ == "__main__":
    counts = tuple(int(n) for n in sys.argv[1:]) or (1000, 10000)
    print("\n".join(table(asyncio.run(measure(counts)))), flush=True)
    os._exit(0)  # skip interpreter finalization (temporalio/sdk-python#300)
