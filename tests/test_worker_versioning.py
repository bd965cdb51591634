"""Rolling upgrades with open runs (issue 10, item 3): Worker Versioning with the real CLIs. A run
started on build A waits for a person; build B is deployed and made current; A stops; the
answer arrives, and the run completes on B (`AgentWorkflow` is AUTO_UPGRADE)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.common import VersioningBehavior
from temporalio.testing import WorkflowEnvironment

from durable_agent import ToolMessage
from durable_agent.client import AgentClient
from durable_agent.wire import ToolResultSignal

from .helpers import wait_pending
from .processes import eventually, stop, temporal
from .test_e2e import address_of, assert_paired
from .test_rolling_restart import start_polling


async def versioned_worker(
    client: Client, address: str, queue: str, log: Path, deployment: str, build_id: str
) -> subprocess.Popen[bytes]:
    """`durable-agent worker` of `build_id`, configured by environment as in docker compose,
    once it polls."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DURABLE_AGENT_DEPLOYMENT_NAME", deployment)
        env.setenv("DURABLE_AGENT_BUILD_ID", build_id)
        return await start_polling(client, address, queue, log)


async def set_current(address: str, deployment: str, build_id: str) -> None:
    """`temporal worker deployment set-current-version`, as an operator runs it; retried while
    the server has not yet registered the version its worker polls with."""

    async def done() -> bool:
        try:
            await asyncio.to_thread(
                temporal,
                address,
                *("worker", "deployment", "set-current-version", "--yes"),
                *("--deployment-name", deployment, "--build-id", build_id),
            )
        except subprocess.CalledProcessError:
            return False
        return True

    await eventually(done, f"{build_id} to become current", seconds=30)


@pytest.mark.slow  # ~10 s: two worker processes and the `temporal` CLI
async def test_a_waiting_run_completes_on_the_new_build_after_the_old_one_stops(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client, address = dev_env.client, address_of(dev_env)
    queue, log = f"versioning-{uuid.uuid4()}", tmp_path / "log.jsonl"
    deployment = f"agents-{uuid.uuid4().hex[:8]}"
    agents = AgentClient(client, queue)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        workers.append(await versioned_worker(client, address, queue, log, deployment, "build-a"))
        await set_current(address, deployment, "build-a")
        handle = await agents.start("asker", "ship it?")
        [call] = await wait_pending(agents, handle.id)
        described = await handle.describe()
        versioning = described.raw_description.workflow_execution_info.versioning_info
        assert versioning.deployment_version.build_id == "build-a"
        assert versioning.behavior == VersioningBehavior.AUTO_UPGRADE.value

        # The upgrade: B polls beside A, becomes current, and A stops.
        workers.append(await versioned_worker(client, address, queue, log, deployment, "build-b"))
        await set_current(address, deployment, "build-b")
        stop(workers[0])

        await handle.signal(
            "tool_result", ToolResultSignal(tool_call_id=call.tool_call_id, content="yes")
        )
        result = await asyncio.wait_for(handle.result(), timeout=30)
        described = await handle.describe()
        identities = [
            e.workflow_task_completed_event_attributes.identity
            async for e in handle.fetch_history_events()
            if e.HasField("workflow_task_completed_event_attributes")
        ]
        deployments = await asyncio.to_thread(
            temporal, address, "worker", "deployment", "describe", "--name", deployment
        )
    finally:
        for worker in workers:
            if worker.poll() is None:
                stop(worker)

    assert result.final_text == "shipped"
    assert_paired(result)
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == ["yes"]
    versioning = described.raw_description.workflow_execution_info.versioning_info
    assert versioning.deployment_version.build_id == "build-b"
    # The first tasks ran on A, the last one on B.
    assert identities[0].startswith(f"{workers[0].pid}@")
    assert identities[-1].startswith(f"{workers[1].pid}@")
    print(f"\ndeployment after the upgrade: {deployments}")
