"""End to end on the dev server, with worker processes and the real `temporal` CLI."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agent import AgentRunResult, AssistantMessage, ToolMessage
from durable_agent.client import AgentClient
from durable_agent.worker import connect

from .helpers import wait_pending
from .processes import DevServer, eventually, log_lines, start_worker, stop, temporal


def address_of(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def assert_paired(result: AgentRunResult) -> None:
    """Every tool call has exactly one result, and nothing is duplicated."""
    calls = [c.id for m in result.messages if isinstance(m, AssistantMessage) for c in m.tool_calls]
    results = [m.tool_call_id for m in result.messages if isinstance(m, ToolMessage)]
    assert len(calls) == len(set(calls))
    assert results == calls


async def test_cli_start_signal_while_no_worker_runs(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address, queue, wf = address_of(dev_env), f"e2e-{uuid.uuid4()}", f"wf-{uuid.uuid4()}"
    log = tmp_path / "log.jsonl"
    worker = start_worker(address, queue, log)
    try:
        temporal(
            address,
            "workflow",
            "start",
            "--type",
            "AgentWorkflow",
            "--task-queue",
            queue,
            "--workflow-id",
            wf,
            "--input",
            json.dumps({"agent": "jobber", "prompt": "go"}),
        )
        client = AgentClient(dev_env.client, queue)
        [pending] = await wait_pending(client, wf)
    finally:
        stop(worker)
    assert pending.kind == "long_running"
    assert [line["id"] for line in log_lines(log)] == [pending.tool_call_id]
    temporal(
        address,
        "workflow",
        "signal",
        "--workflow-id",
        wf,
        "--name",
        "tool_result",
        "--input",
        json.dumps({"tool_call_id": pending.tool_call_id, "content": "report ready"}),
    )
    worker = start_worker(address, queue, log)
    try:
        out = temporal(address, "workflow", "result", "--workflow-id", wf)
    finally:
        stop(worker)
    result = AgentRunResult.model_validate(out["result"])
    assert result.final_text == "the job finished"
    assert_paired(result)
    [tool_message] = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert (tool_message.tool_call_id, tool_message.content) == (
        pending.tool_call_id,
        "report ready",
    )
    assert len(log_lines(log)) == 1, "the long-running tool's body ran once"


@pytest.mark.slow  # ~13 s: two worker processes; its tool keeps every default
async def test_worker_killed_mid_tool_another_finishes(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address, queue = address_of(dev_env), f"e2e-{uuid.uuid4()}"
    log = tmp_path / "log.jsonl"
    worker = start_worker(address, queue, log)
    client = AgentClient(dev_env.client, queue)
    try:
        handle = await client.start("stepper", "go")

        async def first_step_running() -> bool:
            return any(line["kind"] == "slow_step_started" for line in log_lines(log))

        await eventually(first_step_running, "the first slow step to start")
    finally:
        stop(worker, signal.SIGKILL)
    worker = start_worker(address, queue, log)
    try:
        result = await handle.result()
    finally:
        stop(worker)
    assert result.final_text == "all steps done"
    assert_paired(result)
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == [
        "step 1 done",
        "step 2 done",
    ]


@pytest.mark.slow  # 9-13 s: its own dev server, started twice
async def test_dev_server_restarted_while_a_call_waits(tmp_path: Path) -> None:
    server = DevServer(tmp_path / "temporal.db")
    queue, log = f"e2e-{uuid.uuid4()}", tmp_path / "log.jsonl"
    try:
        await server.start()
        client = AgentClient(await connect(server.address), queue)
        worker = start_worker(server.address, queue, log)
        try:
            handle = await client.start("jobber", "go")
            await wait_pending(client, handle.id)
        finally:
            stop(worker)
        server.stop()
        await server.start()
        [call_id] = [line["id"] for line in log_lines(log)]
        temporal(
            server.address,
            "workflow",
            "signal",
            "--workflow-id",
            handle.id,
            "--name",
            "tool_result",
            "--input",
            json.dumps({"tool_call_id": call_id, "content": "survived"}),
        )
        worker = start_worker(server.address, queue, log)
        try:
            client = AgentClient(await connect(server.address), queue)
            result = await client.result(handle.id)
        finally:
            stop(worker)
    finally:
        server.stop()
    assert result.final_text == "the job finished"
    assert_paired(result)
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == ["survived"]
