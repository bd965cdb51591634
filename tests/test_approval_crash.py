"""An approved call's body runs at most once per attempt budget, even when the worker dies
right after the approval (issue 11, item 3). Real worker processes on the dev server."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agent import StatusEvent
from durable_agent.client import AgentClient

from .e2e_agents import pay
from .helpers import wait_pending
from .processes import log_lines, start_worker, stop
from .test_e2e import address_of, assert_paired


@pytest.mark.slow  # ~10 s: a worker killed and replaced
async def test_a_worker_killed_right_after_an_approval_runs_the_call_once(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address, queue, log = address_of(dev_env), f"approve-{uuid.uuid4()}", tmp_path / "log.jsonl"
    client = AgentClient(dev_env.client, queue)
    worker = start_worker(address, queue, log)
    try:
        handle = await client.start("payer", "pay me")
        [pending] = await wait_pending(client, handle.id)
        await client.decide(handle.id, "p1", True, digest=pending.digest)
    finally:
        stop(worker, signal.SIGKILL)  # the moment the approval is taken
    worker = start_worker(address, queue, log)
    try:
        result = await asyncio.wait_for(handle.result(), 60)
        stream = await client.history(handle.id, ["agent"])
    finally:
        stop(worker)
    kinds = [line["kind"] for line in log_lines(log)]
    budget = pay.retry.maximum_attempts
    assert kinds.count("pay_done") == 1, kinds
    assert 1 <= kinds.count("pay_started") <= budget, kinds
    decisions = [i for i in stream.items if isinstance(i, StatusEvent)]
    assert [e.kind for e in decisions].count("approval_received") == 1
    assert_paired(result)
    assert result.final_text == "paid"
