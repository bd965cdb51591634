"""Graceful shutdown and rolling restarts (issue 10, item 2; issue 18, item 4): a worker stopped
with SIGTERM starts no new poll and lets those in flight be answered (so no task is handed to a
poll as the SDK cancels it), lets its running calls finish within `--graceful-timeout`, then
cancels what is left so another worker retries it at once. Real worker processes on the dev
server."""

from __future__ import annotations

import asyncio
import signal
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, TaskQueueKind, TimeoutType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from durable_agent import AgentRunResult
from durable_agent.client import AgentClient
from faults.cluster import polls

from .e2e_agents import SHIFTER_TURNS
from .processes import eventually, log_lines, start_worker, stop
from .test_e2e import address_of, assert_paired

RUNS = 20
WORKERS = 3
BOUND = 120.0
"""The test's own bound on a stopping worker's exit: a worker that never exits fails."""


async def start_polling(
    client: Client, address: str, queue: str, log: Path
) -> subprocess.Popen[bytes]:
    """A new worker process, once it polls."""
    worker = start_worker(address, queue, log)
    try:
        await eventually(lambda: polls(client, queue, worker), f"worker {worker.pid} to poll")
    except BaseException:
        stop(worker)
        raise
    return worker


async def stopped(worker: subprocess.Popen[bytes]) -> float:
    """SIGTERM `worker` and wait (bounded) until it exits by itself, cleanly; how long it
    took."""
    began = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(worker.wait, BOUND)
    assert code == 0, f"worker {worker.pid} exited with {code}"
    return time.monotonic() - began


def finished_after(log: Path, pid: int, wall_time: float) -> int:
    """How many calls worker `pid` had started before `wall_time` and finished after it."""
    lines = [line for line in log_lines(log) if int(line.get("pid", 0)) == pid]
    started = {line["id"] + line["wf"] for line in lines if line["kind"] == "shift_started"}
    return sum(
        1
        for line in lines
        if line["kind"] == "shift_done"
        and float(line["t"]) > wall_time
        and line["id"] + line["wf"] in started
    )


async def completion_times(handles: list[WorkflowHandle[Any, AgentRunResult]]) -> list[float]:
    """Seconds from now until each run ended; every run must complete with its calls paired."""
    began = time.monotonic()

    async def one(handle: WorkflowHandle[Any, AgentRunResult]) -> float:
        result = await handle.result()
        assert result.final_text == "all shifts worked"
        assert result.turns == SHIFTER_TURNS + 1
        assert_paired(result)
        return time.monotonic() - began

    return await asyncio.wait_for(asyncio.gather(*map(one, handles)), timeout=180)


async def timeouts(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The run's task timeouts, each as `<workflow|activity>:<timeout type>[:sticky]`."""
    found: list[str] = []
    scheduled_on: dict[int, int] = {}  # workflow task scheduled event id -> task queue kind
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            kind = event.workflow_task_scheduled_event_attributes.task_queue.kind
            scheduled_on[event.event_id] = kind
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            attrs = event.workflow_task_timed_out_event_attributes
            sticky = scheduled_on[attrs.scheduled_event_id] == TaskQueueKind.TASK_QUEUE_KIND_STICKY
            found.append(
                f"workflow:{TimeoutType.Name(attrs.timeout_type)}" + (":sticky" if sticky else "")
            )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            timeout = event.activity_task_timed_out_event_attributes.failure.timeout_failure_info
            found.append(f"activity:{TimeoutType.Name(timeout.timeout_type)}")
    return found


def tool_results_per_call(log: Path) -> dict[tuple[str, str], int]:
    """(workflow id, tool_call_id) -> how many times the shift finished."""
    done: dict[tuple[str, str], int] = {}
    for line in log_lines(log):
        if line["kind"] == "shift_done":
            key = (line["wf"], line["id"])
            done[key] = done.get(key, 0) + 1
    return done


@pytest.mark.slow  # ~60 s: 40 runs of ~19 s, three workers restarted one at a time
async def test_three_workers_restarted_one_at_a_time_under_twenty_runs(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_env.client
    address, queue, log = address_of(dev_env), f"rolling-{uuid.uuid4()}", tmp_path / "log.jsonl"
    agents = AgentClient(client, queue)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(WORKERS):
            workers.append(await start_polling(client, address, queue, log))

        # The baseline: the same runs on the same workers, none restarted.
        handles = [await agents.start("shifter", "work") for _ in range(RUNS)]
        baseline = await completion_times(handles)

        handles = [await agents.start("shifter", "work") for _ in range(RUNS)]
        runs = asyncio.ensure_future(completion_times(handles))
        stops: list[tuple[int, float, float]] = []  # pid, SIGTERM's wall time, seconds to exit
        await asyncio.sleep(1)  # into the middle of the first calls
        for i in range(WORKERS):
            sent = time.time()
            stops.append((workers[i].pid, sent, await stopped(workers[i])))
            workers[i] = await start_polling(client, address, queue, log)
        restarted = await runs
    finally:
        for worker in workers:
            if worker.poll() is None:
                stop(worker)

    drained = [finished_after(log, pid, sent) for pid, sent, _ in stops]
    timed_out = [t for h in handles for t in await timeouts(h)]
    print(
        f"\nbaseline: median {statistics.median(baseline):.1f} s, max {max(baseline):.1f} s;"
        f" restarted: median {statistics.median(restarted):.1f} s, max {max(restarted):.1f} s;"
        f" workers stopped in {', '.join(f'{s:.1f}' for *_, s in stops)} s,"
        f" finishing {drained} calls; task timeouts {timed_out}"
    )
    # No task was handed to a stopping worker and lost there: that is a workflow task timing out
    # after it started (10 s, the stall issue 18 found in 1 run of 20) or an activity timing out.
    # What remains is a task sent to a stopping worker's sticky queue after its last sticky poll,
    # which moves to the task queue after the sticky timeout (1 s): the SDK tells the server the
    # worker is gone only once its calls have drained.
    assert set(timed_out) <= {"workflow:TIMEOUT_TYPE_SCHEDULE_TO_START:sticky"}
    # The first worker stopped 1 s into the runs' first calls, and finished its calls there
    # (the later ones may find the runs over on a loaded machine, where a worker takes 10 s to
    # start); each exited by itself, cleanly (`stopped`), with none of its calls cancelled
    # (below): it left once its calls were done, not when the grace period ran out. How long
    # that took is printed above, not asserted.
    assert drained[0]
    # Calls that were running when their worker stopped finished there; none ran twice.
    per_call = tool_results_per_call(log)
    assert len(per_call) == 2 * RUNS * SHIFTER_TURNS * 2
    assert set(per_call.values()) == {1}
    assert not [line for line in log_lines(log) if line["kind"] == "shift_cancelled"]


@pytest.mark.slow  # ~6 s: one call outlasts a 2 s grace period
async def test_a_call_that_outlasts_the_grace_period_is_cancelled_and_retried_elsewhere_at_once(
    dev_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short grace period, so the test need not wait 30 s for what it shows.
    grace = 2.0
    monkeypatch.setenv("DURABLE_AGENT_GRACEFUL_TIMEOUT", str(grace))
    client = dev_env.client
    address, queue, log = address_of(dev_env), f"grace-{uuid.uuid4()}", tmp_path / "log.jsonl"
    first = await start_polling(client, address, queue, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        handle = await AgentClient(client, queue).start("overworker", "work late")

        async def started() -> bool:
            return any(line["kind"] == "overtime_started" for line in log_lines(log))

        await eventually(started, "the first attempt to start")
        second = await start_polling(client, address, queue, log)
        began = time.monotonic()
        took_to_stop = await stopped(first)
        result = await asyncio.wait_for(handle.result(), timeout=BOUND)
        took = time.monotonic() - began
        timed_out = await timeouts(handle)
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                stop(worker)

    print(f"\nstopped in {took_to_stop:.1f} s; the run ended {took:.1f} s after SIGTERM")
    kinds = [line["kind"] for line in log_lines(log)]
    assert kinds == ["overtime_started", "overtime_cancelled", "overtime_started", "overtime_done"]
    assert result.final_text == "overtime is over"
    assert_paired(result)
    # The worker gave the call its grace period (a lower bound: load only lengthens it), then
    # cancelled it; the retry came from that failure at once, not from a timeout the server
    # had to wait out (the first attempt would have run a minute).
    assert took_to_stop >= grace
    assert not [t for t in timed_out if t.startswith("activity:")], timed_out
