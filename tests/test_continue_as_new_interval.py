"""What `MIN_RUN_AGE` rests on: the server's minimal interval between continued runs.

When a run continues as new sooner than `history.workflowIdReuseMinimalInterval` (default 1 s;
the older key `history.continueAsNewMinInterval` was removed in server 1.25 and is ignored) after
it started, the server gives the new run a `firstWorkflowTaskBackoff` of (interval - age): its
first workflow task waits on a timer (temporalio/temporal, service/history/workflow/
mutable_state_impl.go, `ContinueAsNewMinBackoff`). The backoff always ends; nothing stalls. But
during that window the run has no workflow task, and an Update rejected by its validator there
sends the first real task to the (caching) worker's sticky queue, which the server refuses
("should have a build ID directive on versioned sticky queue", server 1.32): the task waits out
the sticky schedule-to-start timeout, and a signal arriving meanwhile can be lost by the cached
run. A run at least the interval old gets no backoff, so none of this can happen.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

INTERVAL = 1.0  # the dev server's history.workflowIdReuseMinimalInterval


@workflow.defn
class ContinueChain:
    """Sleeps `pause` seconds, continues as new `n` times, then waits for `release` if asked."""

    def __init__(self) -> None:
        self.released = False

    @workflow.run
    async def run(self, n: int, pause: float, wait: bool) -> str:
        if pause:
            await workflow.sleep(pause)
        if n > 0:
            workflow.continue_as_new(args=[n - 1, pause, wait])
        if wait:
            await workflow.wait_condition(lambda: self.released)
        return "done"

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.update
    def poke(self, ok: bool) -> str:
        return "poked"

    @poke.validator
    def _check_poke(self, ok: bool) -> None:
        if not ok:
            raise ValueError("rejected")


def _worker(client: Client, **options: object) -> Worker:
    return Worker(
        client,
        task_queue=f"tq-{uuid.uuid4()}",
        workflows=[ContinueChain],
        workflow_runner=UnsandboxedWorkflowRunner(),
        **options,  # type: ignore[arg-type]
    )


async def _runs(client: Client, workflow_id: str, run_id: str) -> list[list[HistoryEvent]]:
    """Every run's history, first to last, following the continued-as-new links."""
    runs: list[list[HistoryEvent]] = []
    next_run: str | None = run_id
    while next_run:
        history = await client.get_workflow_handle(workflow_id, run_id=next_run).fetch_history()
        runs.append(list(history.events))
        next_run = next(
            (
                e.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            ),
            None,
        )
    return runs


def _backoff(events: list[HistoryEvent]) -> float:
    attrs = events[0].workflow_execution_started_event_attributes
    return attrs.first_workflow_task_backoff.ToTimedelta().total_seconds()


def _first_task_delay(events: list[HistoryEvent]) -> float:
    """Seconds from the run's start to its first workflow task being scheduled."""
    scheduled = next(
        e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    )
    return (scheduled.event_time.ToDatetime() - events[0].event_time.ToDatetime()).total_seconds()


def _age_at_continue(events: list[HistoryEvent]) -> float:
    """Seconds from the run's execution time (start + backoff) to its continue-as-new."""
    end = events[-1]
    assert end.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    ran = (end.event_time.ToDatetime() - events[0].event_time.ToDatetime()).total_seconds()
    return ran - _backoff(events)


async def test_a_run_continued_sooner_than_the_interval_waits_out_the_rest_of_it(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    async with _worker(client) as worker:
        handle = await client.start_workflow(
            ContinueChain.run,
            args=[2, 0.0, False],
            id=f"can-{uuid.uuid4()}",
            task_queue=worker.task_queue,
        )
        assert await asyncio.wait_for(handle.result(), 60) == "done"  # never stalls
        runs = await _runs(client, handle.id, handle.result_run_id or "")
    assert len(runs) == 3
    assert _backoff(runs[0]) == 0
    for previous, run in itertools.pairwise(runs):
        age = _age_at_continue(previous)
        # backoff = interval - age of the previous run (measured from its execution time), none
        # for a run already that old (a slow machine). Both times are the server's, taken in
        # one request: measured 4 ms apart at most; `abs` leaves room for a loaded server.
        assert _backoff(run) == pytest.approx(max(0.0, INTERVAL - age), abs=0.2)
        assert _first_task_delay(run) >= _backoff(run)  # the first task waits it out


async def test_a_run_continued_after_the_interval_gets_no_backoff(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    async with _worker(client) as worker:
        handle = await client.start_workflow(
            ContinueChain.run,
            args=[1, INTERVAL + 0.1, False],
            id=f"can-{uuid.uuid4()}",
            task_queue=worker.task_queue,
        )
        assert await asyncio.wait_for(handle.result(), 60) == "done"
        runs = await _runs(client, handle.id, handle.result_run_id or "")
    assert len(runs) == 2
    assert _age_at_continue(runs[0]) >= INTERVAL
    assert _backoff(runs[1]) == 0  # so its first task is scheduled with the run


async def test_an_update_rejected_during_the_backoff_strands_the_first_task_on_the_sticky_queue(
    dev_env: WorkflowEnvironment,
) -> None:
    """Server 1.32 behaviour (a bug): if a later server fixes it, this test fails and the age
    guard may only be saving the ~1 s backoff."""
    client = dev_env.client
    sticky_timeout = timedelta(seconds=1)
    async with _worker(client, sticky_queue_schedule_to_start_timeout=sticky_timeout) as worker:
        handle = await client.start_workflow(
            ContinueChain.run,
            args=[1, 0.0, True],
            id=f"can-{uuid.uuid4()}",
            task_queue=worker.task_queue,
        )
        for _ in range(100):  # until the first run has continued as new
            if (await handle.describe()).run_id != handle.result_run_id:
                break
            await asyncio.sleep(0.01)
        latest = client.get_workflow_handle(handle.id)
        second = await latest.describe()
        assert second.run_id != handle.result_run_id
        # The second run is inside its ~1 s backoff: no workflow task yet.
        try:
            await asyncio.wait_for(latest.execute_update(ContinueChain.poke, False), 30)
            raise AssertionError("the validator should have rejected the update")
        except WorkflowUpdateFailedError:
            pass
        events: list[HistoryEvent] = []
        for _ in range(600):  # bounded (the backoff plus the sticky timeout, about 2 s)
            history = await client.get_workflow_handle(
                handle.id, run_id=second.run_id
            ).fetch_history()
            events = list(history.events)
            if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events):
                break
            await asyncio.sleep(0.05)
        await latest.signal(ContinueChain.release)
        assert await asyncio.wait_for(latest.result(), 60) == "done"
    kinds = [e.event_type for e in events]
    assert kinds[:3] == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    ], "the first workflow task after the backoff was never started where it was sent"
    first_queue = events[1].workflow_task_scheduled_event_attributes.task_queue.name
    assert first_queue != worker.task_queue, "it was sent to the worker's sticky queue"
    timed_out = events[2].workflow_task_timed_out_event_attributes
    assert timed_out.timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
    stranded = events[2].event_time.ToDatetime() - events[1].event_time.ToDatetime()
    assert stranded.total_seconds() >= 0.9 * sticky_timeout.total_seconds()
