"""What tests wait for and look at in a run: pending calls, states, stream events, refusals.

Every wait is built on `conftest.eventually`, so a run that never gets there fails with what the
test waited for instead of hanging or falling through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError

from durable_agent import (
    AssistantMessage,
    ModelRequest,
    PendingCall,
    RunState,
    ScriptedModel,
    StatusEvent,
    StatusInfo,
)
from durable_agent.client import AgentClient

from .conftest import eventually, new_id


async def wait_pending(
    client: AgentClient, wf_id: str, n: int = 1, *, ids: Sequence[str] = (), what: str = ""
) -> list[PendingCall]:
    """Wait until exactly `n` calls are pending (or, given `ids`, exactly those calls, in any
    order) and return them."""
    found: list[PendingCall] = []
    want = sorted(ids)

    async def check() -> bool:
        nonlocal found
        found = await client.pending(wf_id)
        got = [p.tool_call_id for p in found]
        return sorted(got) == want if ids else len(got) == n

    wanted = f"pending calls {tuple(ids)}" if ids else f"{n} pending call(s)"
    await eventually(check, what or f"{wanted} in {wf_id}")
    return found


async def wait_state(
    client: AgentClient, wf_id: str, state: RunState | None = None, *, turn: int | None = None
) -> StatusInfo:
    """Wait until the run is in `state` (and at `turn`, when given) and return its status."""
    status: StatusInfo | None = None

    async def check() -> bool:
        nonlocal status
        status = await client.status(wf_id)
        return (state is None or status.state is state) and (turn is None or status.turn == turn)

    await eventually(check, f"{wf_id} in state {state} at turn {turn}")
    assert status is not None
    return status


def events(items: Sequence[object], kind: str) -> list[dict[str, Any]]:
    """The data of every status event of `kind` in a history page's items."""
    return [i.data for i in items if isinstance(i, StatusEvent) and i.kind == kind]


async def ignored_signals(client: AgentClient, wf_id: str) -> list[dict[str, Any]]:
    page = await client.history(wf_id, ["agent"])
    return events(page.items, "signal_ignored")


async def wait_ignored(client: AgentClient, wf_id: str, count: int) -> list[dict[str, Any]]:
    """Signals are fire-and-forget: wait until the workflow has recorded `count` refusals."""
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        nonlocal found
        found = await ignored_signals(client, wf_id)
        return len(found) >= count

    await eventually(check, f"{count} signal_ignored event(s) in {wf_id}")
    return found


def refusal(error: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> str:
    """Why an update was refused, as the caller reads it."""
    return str(error.value.cause)


async def result_unless_stuck(handle: WorkflowHandle[Any, Any], seconds: float = 10.0) -> Any:
    """The run's result, or an AssertionError as soon as a workflow task fails: such a run
    is stuck (the server retries the task for ever), which bad input must never cause."""
    result = asyncio.ensure_future(handle.result())

    async def finished_or_failed_a_task() -> bool:
        if result.done():
            return True
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_task_failed_event_attributes"):
                failure = event.workflow_task_failed_event_attributes.failure
                raise AssertionError(f"a workflow task failed: {failure.message}")
        return False

    try:
        await eventually(
            finished_or_failed_a_task, f"{handle.id} to finish or fail a task", seconds
        )
        return result.result()
    finally:
        if not result.done():
            result.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await result
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("stuck")


def recording(replies: Sequence[str | AssistantMessage], into: list[ModelRequest]) -> ScriptedModel:
    """A scripted model that keeps every request it gets (full conversation): reply *n*
    answers the *n*-th request."""

    def script(request: ModelRequest) -> str | AssistantMessage:
        into.append(request)
        return replies[len(into) - 1]

    return ScriptedModel(f"recording-{new_id()}", script)
