"""A worker dies mid-call, or the run is cancelled mid-call: with every setting at its default,
the dead worker's call is presumed dead by its heartbeat timeout and another worker finishes the
run, and a cancelled call hears of it in seconds (issue 10, item 1). Real worker processes on the
dev server. The issue's bar, within 15 s of the kill, is a speed goal: `make bench` measures it
(crash mid-call); here a busy machine may take seconds just to start the new worker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from durable_agent import AgentRunResult, ToolMessage
from durable_agent.client import AgentClient

from .fake_llm_server import FakeLLMServer, text
from .processes import eventually, log_lines, start_worker, stop
from .test_e2e import address_of, assert_paired

INTO_THE_CALL = 1.5
"""The kill comes this long into the call, after its first heartbeat (at a fifth of the
heartbeat timeout) reached the server: detection then takes 3.3 s of the 4 s timeout; the worst
case, a kill just after a heartbeat, 4 s."""


async def until_logged(log: Path, *kinds: str, seconds: float = 30) -> None:
    """Wait until the worker's tools logged each of `kinds`."""

    async def check() -> bool:
        seen = {line["kind"] for line in log_lines(log)}
        return all(kind in seen for kind in kinds)

    await eventually(check, f"{', '.join(kinds)} in the log", seconds)


@dataclass
class Recovery:
    result: AgentRunResult
    seconds: float
    """From the kill to the run's end."""
    timeline: str
    """The run's events after the kill, in seconds from it: where the time went."""
    given_up_by: list[str]
    """Why each retried attempt's predecessor was given up (its retry's last failure)."""


async def kill_mid_call(
    address: str,
    queue: str,
    log: Path,
    worker: subprocess.Popen[bytes],
    handle: WorkflowHandle[Any, AgentRunResult],
) -> Recovery:
    """SIGKILL `worker` `INTO_THE_CALL` seconds into the call that is running now, and start
    another at once."""
    try:
        await asyncio.sleep(INTO_THE_CALL)
    finally:
        stop(worker, signal.SIGKILL)
    killed, killed_at = time.monotonic(), time.time()
    worker = start_worker(address, queue, log)

    async def timeline() -> str:
        history = await handle.fetch_history()
        return ", ".join(
            f"{EventType.Name(e.event_type).removeprefix('EVENT_TYPE_').lower()} "
            f"+{e.event_time.ToDatetime(UTC).timestamp() - killed_at:.1f}"
            for e in history.events
            if e.event_time.ToDatetime(UTC).timestamp() > killed_at
        )

    try:
        # A bound on the test, not on recovery: on a loaded 2-core machine starting the new
        # worker process alone took tens of seconds (one fresh-clone CI run passed 60 s).
        result = await asyncio.wait_for(handle.result(), timeout=180)
        seconds = time.monotonic() - killed
    except TimeoutError:
        pytest.fail(f"the run did not end within 180 s of the kill: {await timeline()}")
    finally:
        stop(worker)
    history = await handle.fetch_history()
    given_up_by = [
        TimeoutType.Name(started.last_failure.timeout_failure_info.timeout_type)
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and (started := e.activity_task_started_event_attributes).attempt > 1
    ]
    return Recovery(result, seconds, await timeline(), given_up_by)


@pytest.mark.slow  # ~13 s: a 6 s tool, killed and run again
async def test_worker_killed_mid_tool_is_presumed_dead_by_its_heartbeat_and_another_finishes(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address, queue, log = address_of(dev_env), f"crash-{uuid.uuid4()}", tmp_path / "log.jsonl"
    worker = start_worker(address, queue, log)
    try:
        handle = await AgentClient(dev_env.client, queue).start("plodder", "go")
        await until_logged(log, "long_step_started")
    except BaseException:
        stop(worker)
        raise
    recovery = await kill_mid_call(address, queue, log, worker, handle)
    assert recovery.result.final_text == "the long step is done"
    assert_paired(recovery.result)
    assert [line["kind"] for line in log_lines(log)] == [
        "long_step_started",  # on the worker killed
        "long_step_started",  # run again on the other one
        "long_step_done",
    ]
    # The heartbeat timeout (4 s), not the start-to-close timeout (minutes), gave the call up:
    # what brings the run back within the 15 s.
    assert recovery.given_up_by == ["TIMEOUT_TYPE_HEARTBEAT"], (recovery.seconds, recovery.timeline)


@pytest.mark.slow  # ~13 s: a 6 s model call, killed and made again
async def test_worker_killed_mid_model_call_is_presumed_dead_by_its_heartbeat_and_another_finishes(
    dev_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address, queue, log = address_of(dev_env), f"crash-{uuid.uuid4()}", tmp_path / "log.jsonl"
    with FakeLLMServer() as server:
        # The real OpenAI provider in the worker processes, over HTTP to the fake server.
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        server.reply(text("lost with the worker", delay=6), text("thought it through", delay=6))
        worker = start_worker(address, queue, log)
        try:
            handle = await AgentClient(dev_env.client, queue).start("thinker", "think")

            async def calling() -> bool:
                return len(server.requests) == 1

            await eventually(calling, "the model call")
        except BaseException:
            stop(worker)
            raise
        recovery = await kill_mid_call(address, queue, log, worker, handle)
        assert len(server.requests) == 2
    assert recovery.result.final_text == "thought it through"
    # The heartbeat timeout (4 s), not the start-to-close timeout (minutes), gave the call up:
    # what brings the run back within the 15 s.
    assert recovery.given_up_by == ["TIMEOUT_TYPE_HEARTBEAT"], (recovery.seconds, recovery.timeline)


@pytest.mark.slow  # ~35 s: three workers killed during one call, each detected in ~4 s
async def test_kills_never_use_up_a_tools_attempts_only_its_own_exceptions_do(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Issue 18: a worker killed mid-call used up one of the tool's attempts, so the model was
    told a tool failed when only its workers had died (17 of 96 runs in a fault storm). The
    tool has two attempts of its own; three workers die during it, then it fails once on its
    own, then succeeds: five runs of its body, one result, and that result is the success."""
    address, queue, log = address_of(dev_env), f"kills-{uuid.uuid4()}", tmp_path / "log.jsonl"
    worker = start_worker(address, queue, log)
    try:
        handle = await AgentClient(dev_env.client, queue).start("sturdy", "go")
        for run in range(1, 4):
            await until_started(log, "sturdy_started", run)
            await asyncio.sleep(INTO_THE_CALL)
            stop(worker, signal.SIGKILL)
            worker = start_worker(address, queue, log)
        result = await asyncio.wait_for(handle.result(), timeout=90)
    finally:
        stop(worker)
    assert_paired(result)
    [answer] = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert (answer.content, answer.is_error) == ("sturdy step done", False)
    assert [line["kind"] for line in log_lines(log)] == ["sturdy_started"] * 5
    assert result.final_text == "the sturdy step is done"


async def until_started(log: Path, kind: str, count: int) -> None:
    """Wait until the worker's tools logged `kind` `count` times."""

    async def check() -> bool:
        return sum(line["kind"] == kind for line in log_lines(log)) >= count

    await eventually(check, f"{kind} x{count} in the log", 30)


async def test_a_cancelled_run_cancels_its_async_tool_and_its_sync_tool_runs_out(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address, queue, log = address_of(dev_env), f"cancel-{uuid.uuid4()}", tmp_path / "log.jsonl"
    worker = start_worker(address, queue, log)
    try:
        handle = await AgentClient(dev_env.client, queue).start("waiter", "wait")
        await until_logged(log, "wait_async_started", "wait_sync_started")
        before_cancel = [line["kind"] for line in log_lines(log)]
        await handle.cancel()
        # TRY_CANCEL: the run ends without waiting for its calls to acknowledge (the bound is
        # the test's).
        result = await asyncio.wait_for(handle.result(), timeout=60)
        assert result.outcome == "cancelled"
        # The async tool gets asyncio.CancelledError with the answer to its next heartbeat.
        # Only a cancellation logs this: left alone, the tool sleeps 60 s and logs nothing, so
        # the bound (the test's, not a speed goal) stays under that.
        await until_logged(log, "wait_async_cancelled", seconds=50)
        # The sync tool's thread cannot be interrupted: it runs to its end, its result unheard.
        await until_logged(log, "wait_sync_done")
        history = await handle.fetch_history()
    finally:
        stop(worker)
    # Cause, then effect: the tool heard of the cancellation after the run was asked to stop,
    # and the run asked for its call's cancellation after that.
    assert "wait_async_cancelled" not in before_cancel
    order = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]
    assert order.index("WORKFLOW_EXECUTION_CANCEL_REQUESTED") < order.index(
        "ACTIVITY_TASK_CANCEL_REQUESTED"
    ), order
    assert not any(line["kind"] == "wait_sync_started" for line in log_lines(log)[2:])
