"""The measurements: one run's time and history cost, throughput under concurrent runs, a
worker process's memory, and resume latency after a worker stops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client
from temporalio.service import RPCError

from durable_agent.client import AgentClient

from . import floor
from .variants import Variant

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Timing:
    median: float
    low: float
    high: float


@dataclass
class Cost:
    events: int
    bytes: int
    runs: int


def _id(tag: str) -> str:
    return f"bench-{tag}-{uuid.uuid4().hex[:8]}"


async def per_turn_floor(turns: int, size: int, repeats: int) -> Timing:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await floor.run(turns, size)
        times.append((time.perf_counter() - started) / turns)
    return Timing(statistics.median(times), min(times), max(times))


async def _chain(
    client: Client, workflow_id: str, first_run_id: str | None
) -> AsyncIterator[list[HistoryEvent]]:
    """Each run's events over the whole continue-as-new chain, followed from the first run."""
    run_id = first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        yield list(history.events)
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )


async def history_cost(client: Client, workflow_id: str, first_run_id: str | None) -> Cost:
    """Events and bytes over the whole continue-as-new chain."""
    events = size = runs = 0
    async for history in _chain(client, workflow_id, first_run_id):
        runs += 1
        events += len(history)
        size += sum(e.ByteSize() for e in history)
    return Cost(events, size, runs)


async def run_once(
    variant: Variant,
    queue: str,
    turns: int,
    size: int,
    timeout: float,  # noqa: ASYNC109
) -> tuple[float, Cost]:
    wid = _id(variant.key)
    started = time.perf_counter()
    handle = await variant.start(queue, wid, turns, size)
    try:
        await _finish(variant.client, wid, handle.result(), timeout)
    except BaseException:
        with contextlib.suppress(RPCError):  # it may have ended already (failed, terminated)
            await handle.terminate("bench: gave up")
        raise
    elapsed = time.perf_counter() - started
    return elapsed, await history_cost(variant.client, wid, handle.first_execution_run_id)


@dataclass
class LongRun:
    """One long run, however it ended."""

    calls: int
    """Tool calls asked for: the model calls one `calls` times, then answers."""
    size: int
    cost: Cost
    tool_calls: int
    """Tool activities the run (or chain) scheduled: how far it got."""
    suggested: bool
    """The server suggested continue-as-new to some workflow task of the chain."""
    seconds: float
    failure: str | None
    """None when it completed."""


async def long_run(
    variant: Variant,
    queue: str,
    calls: int,
    size: int,
    timeout: float,  # noqa: ASYNC109
) -> LongRun:
    """One run of `calls` model calls each followed by a tool returning `size` bytes, and a
    final answer. A failure is a result: its history is measured all the same."""
    wid = _id(variant.key)
    started = time.perf_counter()
    handle = await variant.start(queue, wid, calls + 1, size)
    failure = None
    try:
        await _finish(variant.client, wid, handle.result(), timeout)
    except Exception as exc:  # a variant that cannot do it is a result
        failure = reason(exc)
        with contextlib.suppress(RPCError):  # it may have ended already (failed, terminated)
            await handle.terminate("bench: gave up")
    elapsed = time.perf_counter() - started
    events = size_bytes = runs = tools = 0
    suggested = False
    async for history in _chain(variant.client, wid, handle.first_execution_run_id):
        runs += 1
        events += len(history)
        size_bytes += sum(e.ByteSize() for e in history)
        for e in history:
            if e.HasField("activity_task_scheduled_event_attributes"):
                kind = e.activity_task_scheduled_event_attributes.activity_type.name
                tools += kind == variant.tool_activity
            elif e.HasField("workflow_task_started_event_attributes"):
                suggested |= e.workflow_task_started_event_attributes.suggest_continue_as_new
    return LongRun(calls, size, Cost(events, size_bytes, runs), tools, suggested, elapsed, failure)


def reason(exc: BaseException) -> str:
    """The root cause's type and first line: what a failed run reports."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:80]}" if text else type(exc).__name__


class WorkflowTaskFailing(Exception):
    """The run's workflow task keeps failing (a payload over Temporal's 2 MB limit, say):
    Temporal retries it for ever, so the run would only end at the bench's timeout."""


async def _finish(
    client: Client,
    workflow_id: str,
    result: Awaitable[object],
    timeout: float,  # noqa: ASYNC109
) -> None:
    """Wait for the run's result; give up at `timeout`, or as soon as its workflow task has
    failed twice in a row."""
    waiter = asyncio.ensure_future(result)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no result within {timeout:.0f} s")
            done, _ = await asyncio.wait({waiter}, timeout=min(2.0, left))
            if done:
                waiter.result()
                return
            described = await client.get_workflow_handle(workflow_id).describe()
            attempt = described.raw_description.pending_workflow_task.attempt
            if attempt > 2:
                raise WorkflowTaskFailing(await _last_task_failure(client, workflow_id))
    finally:
        waiter.cancel()


async def _last_task_failure(client: Client, workflow_id: str) -> str:
    """The newest workflow task failure's message, read from the end of the history."""
    response = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id),
            maximum_page_size=20,
        )
    )
    for event in response.history.events:
        if event.HasField("workflow_task_failed_event_attributes"):
            return event.workflow_task_failed_event_attributes.failure.message
    return "workflow task keeps failing"


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def dev_server_pid() -> int:
    """The dev server this process started (`start_embedded`): the child running `start-dev`."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if parent == me and b"start-dev" in argv:
            return int(entry.name)
    raise RuntimeError("no dev server started by this process")


async def throughput(variant: Variant, queue: str, concurrency: int, turns: int) -> float:
    started = time.perf_counter()
    handles = [await variant.start(queue, _id("tp"), turns, 1024) for _ in range(concurrency)]
    await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=300)
    return concurrency * turns / (time.perf_counter() - started)


class WorkerProcess:
    """`bench.serve` in a subprocess: its peak memory can be read, and it can be killed."""

    def __init__(self, variant: str, address: str, queue: str, sticky: float | None = None):
        argv = [
            sys.executable,
            "-m",
            "bench.serve",
            variant,
            "--address",
            address,
            "--queue",
            queue,
        ]
        if sticky is not None:
            argv += ["--sticky-seconds", str(sticky)]
        self.process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"bench worker {variant} did not start")

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def stop(self, sig: int) -> None:
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()  # stuck in shutdown: the measurement is over anyway
            self.process.wait(timeout=10)


async def resume_latency(client: Client, address: str, sig: int, sticky: float | None) -> float:
    """Signal to completion, after the worker that ran the run is stopped with `sig` and a new
    one has started."""
    queue = _id("resume")
    agents = AgentClient(client, queue)
    first = WorkerProcess("durable", address, queue, sticky)
    handle = await agents.start("bench-resume", "wait", workflow_id=_id("resume"))
    for _ in range(200):
        if await agents.pending(handle.id):
            break
        await asyncio.sleep(0.05)
    first.stop(sig)
    second = WorkerProcess("durable", address, queue, sticky)
    try:
        await asyncio.sleep(1.0)  # the new worker is polling
        started = time.perf_counter()
        await handle.signal("tool_result", {"tool_call_id": "w", "content": "ok"})
        await asyncio.wait_for(handle.result(), 60)
        return time.perf_counter() - started
    finally:
        second.stop(15)


async def kill_recovery(client: Client, address: str, agent: str) -> float:
    """Seconds from a SIGKILL in the middle of the run's slow call (tool or model, every
    setting at its default) to the run's end, with a new worker started at once."""
    queue = _id("crash")
    first = WorkerProcess("durable", address, queue)
    handle = await AgentClient(client, queue).start(agent, "go", workflow_id=_id("crash"))
    await asyncio.sleep(1.5)  # into the call, after its first heartbeat
    first.stop(signal.SIGKILL)
    killed = time.perf_counter()
    second = WorkerProcess("durable", address, queue)
    try:
        await asyncio.wait_for(handle.result(), 120)
        return time.perf_counter() - killed
    finally:
        second.stop(signal.SIGTERM)
