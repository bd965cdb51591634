"""Connect to Temporal and serve agents: what `durable-agent worker` and the demo run."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType, TaskQueueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, VersioningBehavior, WorkerDeploymentVersion
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkerDeploymentConfig

from . import _drain, live, telemetry
from .authoring import _registry
from .authoring._agent import Agent, ScriptedModel
from .storage import data_converter
from .wire import AGENT_NAME, AGENT_PARENT, AGENT_STATUS, AGENT_TOKENS

DEFAULT_TASK_QUEUE = "durable-agent"
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    AGENT_NAME,
    AGENT_STATUS,
    AGENT_PARENT,
    AGENT_TOKENS,
)
"""The search attributes runs keep current; registered by workers and `durable-agent dev`."""
READY_FILE_VARIABLE = "DURABLE_AGENT_READY_FILE"
DEFAULT_GRACEFUL_TIMEOUT = timedelta(seconds=30)
"""How long a stopping `durable-agent worker` lets running activities finish before it cancels
them (after its polls have drained, `_drain.POLL_DRAIN` twice at most). docker-compose.yml and
deploy/ give the container 10 s more (`stop_grace_period: 40s`, `terminationGracePeriodSeconds:
40`), so the cancellations are reported before the SIGKILL and the calls are retried on another
worker at once instead of after their heartbeat timeout."""

_SLOT_OPTIONS = {
    "tuner",
    "max_concurrent_workflow_tasks",
    "max_concurrent_activities",
    "max_concurrent_local_activities",
    "max_concurrent_nexus_tasks",
}
"""Worker options that set task slots, which the SDK takes only without a tuner."""

log = logging.getLogger("durable_agent")


async def connect(
    address: str | None = None,
    namespace: str | None = None,
    *,
    profile: str | None = None,
    api_key: str | None = None,
) -> Client:
    """Connect with Temporal's own environment configuration (TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS settings, profiles), as the `temporal` CLI does;
    arguments override it."""
    config = ClientConfigProfile.load(profile=profile).to_client_connect_config()
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    if api_key:
        config["api_key"] = api_key
    config["target_host"] = config.get("target_host") or "localhost:7233"
    return await Client.connect(
        **config, data_converter=data_converter(), interceptors=telemetry.client_interceptors()
    )


async def ensure_search_attributes(client: Client) -> None:
    """Register our search attributes when missing: a workflow that sets an unregistered
    search attribute fails every workflow task, so a worker checks before it serves."""
    ops = client.operator_service
    try:
        listed = await ops.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        missing = [k for k in SEARCH_ATTRIBUTES if k.name not in listed.custom_attributes]
    except RPCError as exc:
        if exc.status is not RPCStatusCode.UNIMPLEMENTED:  # the time-skipping server lists none
            raise
        missing = list(SEARCH_ATTRIBUTES)
    if not missing:
        return
    try:
        await ops.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={
                    k.name: IndexedValueType.ValueType(k.indexed_value_type.value)  # same numbers
                    for k in missing
                },
            )
        )
    except RPCError as exc:
        if exc.status is RPCStatusCode.ALREADY_EXISTS:
            return
        if exc.status is RPCStatusCode.PERMISSION_DENIED:  # Temporal Cloud: add them in the UI
            log.warning("cannot register search attributes %s: %s", missing, exc.message)
            return
        raise
    log.info("registered search attributes %s", ", ".join(k.name for k in missing))


def create_worker(
    client: Client,
    agents: Iterable[Agent],
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    providers: Mapping[str, Any] | None = None,
    **worker_options: Any,
) -> Worker:
    """A worker serving `agents` (and every agent they hand off to) on `task_queue`.

    The sticky queue timeout defaults to 1 s instead of Temporal's 10 s: after a worker is
    killed, the next task waits that long for the dead worker before another takes it
    (measured: resume after SIGKILL 10.2 s -> 1.2 s).

    `AgentWorkflow` runs outside Temporal's sandbox by default. The sandbox guards workflow
    code its authors might make non-deterministic; ours is fixed library code, and the only
    user code it runs is the validation of tool arguments against the tool's signature
    (tools, models and hooks are activities). CI replays recorded histories both in and out
    of the sandbox. Outside it, a busy worker spends about a third less CPU
    a turn (bench/). Pass `workflow_runner=SandboxedWorkflowRunner()` (from
    `temporalio.worker.workflow_sandbox`) to run it sandboxed.
    """
    from durable_agent.activities.guardrails import guardrail_activity
    from durable_agent.activities.hooks import hook_activity
    from durable_agent.activities.mcp import MCPActivities
    from durable_agent.activities.model import ModelActivities
    from durable_agent.activities.tools import tool_activities
    from durable_agent.workflows.agent_workflow import AgentWorkflow

    served = _registry.register(task_queue, agents)
    scripted = {
        m.name: m for a in served.values() for m in a.models if isinstance(m, ScriptedModel)
    }
    model_activities = ModelActivities(
        scripted,
        providers,
        preload=(m.partition(":")[0] for a in served.values() for m in a.model_strings),
    )
    tools = [t for a in served.values() for t in a.tool_list]
    hooks = {h.name: h for a in served.values() for h in a.hook_list}
    mcp_servers = [s for a in served.values() for s in a.mcp_servers]
    guardrails = {g.name: g for a in served.values() for g in a.guardrails}
    # Only a worker with MCP servers has the dynamic handler: elsewhere an unknown activity
    # type keeps failing as unknown instead of reaching it.
    mcp = [MCPActivities(mcp_servers, model_activities.transcripts).run] if mcp_servers else []
    telemetry.keep_error_text_out_of_logs(client)  # encrypted: no error text in logs either
    worker_options.setdefault("sticky_queue_schedule_to_start_timeout", timedelta(seconds=1))
    # The identity names where this worker's calls stream their deltas (`durable_agent.live`):
    # readers find it in the run's pending model activity.
    worker_options["identity"] = live.identity(worker_options.get("identity") or client.identity)
    worker_options.setdefault("workflow_runner", UnsandboxedWorkflowRunner())
    # Inside the client's tracing interceptor (client interceptors come first), so its spans
    # get the GenAI attributes.
    interceptors = [*worker_options.pop("interceptors", ()), *telemetry.worker_interceptors(client)]
    # Slots behind gates, so that run_worker can stop taking tasks before the SDK cancels the
    # polls (_drain.py); a caller's own slot settings win.
    gates = None
    if not _SLOT_OPTIONS & worker_options.keys():
        worker_options["tuner"], gates = _drain.gated_tuner()
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[AgentWorkflow],
        activities=[
            model_activities.complete,
            model_activities.summarize,
            model_activities.count_tokens,
            *tool_activities(tools, model_activities.transcripts, guardrails),
            *(hook_activity(h, model_activities.transcripts) for h in hooks.values()),
            *(guardrail_activity(g, model_activities) for g in guardrails.values()),
            *mcp,
        ],
        interceptors=interceptors,
        **worker_options,
    )
    if gates is not None:
        _drain.remember(worker, gates)
    return worker


def deployment_config(
    deployment_name: str | None, build_id: str | None
) -> WorkerDeploymentConfig | None:
    """Worker Versioning for a worker of build `build_id` in deployment `deployment_name`; None
    (an unversioned worker, as before deployments) when neither is given.

    Runs are AUTO_UPGRADE: each moves to the deployment's current build at its next workflow
    task. Runs stay open for days waiting on signals; PINNED, each would keep its build's
    workers alive until it ended. Moving is safe because the replay corpus (tests/histories,
    tests/test_replay.py) proves that new code replays the histories old code wrote. It is the
    worker's default rather than `@workflow.defn(versioning_behavior=...)`: server 1.32 refuses
    every workflow task of a workflow that declares one on an unversioned worker ("versioning
    behavior cannot be specified without deployment options"), and without the flags a
    worker must work as before.
    """
    if not deployment_name and not build_id:
        return None
    if not deployment_name or not build_id:
        raise ValueError("a versioned worker needs both a deployment name and a build id")
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name, build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE,
    )


def load_agents(import_path: str) -> list[Agent]:
    """`pkg.module:attr` where attr is an Agent, a list of them, or a function returning either."""
    module_name, _, attr = import_path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--agents {import_path!r} must look like 'package.module:attribute'")
    value: Any = getattr(importlib.import_module(module_name), attr)
    if callable(value) and not isinstance(value, Agent):
        value = value()
    agents: Sequence[Any] = [value] if isinstance(value, Agent) else list(value)
    if not agents or not all(isinstance(a, Agent) for a in agents):
        raise TypeError(f"{import_path} is not an Agent or a list of Agents")
    return list(agents)


async def _mark_ready(worker: Worker, ready: Path) -> None:
    """Create `ready` once Temporal lists this worker among its task queue's pollers: what a
    readiness probe should wait for before an orchestrator stops the next old worker."""
    identity = worker.config(active_config=True).get("identity") or worker.client.identity
    request = DescribeTaskQueueRequest(
        namespace=worker.client.namespace,
        task_queue=TaskQueue(name=worker.task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    while True:
        try:
            response = await worker.client.workflow_service.describe_task_queue(request)
            if any(p.identity == identity for p in response.pollers):
                await asyncio.to_thread(ready.touch)
                return
        except RPCError as exc:
            log.debug("cannot tell whether this worker polls yet: %s", exc.message)
        await asyncio.sleep(1)


async def run_worker(worker: Worker) -> None:
    """Run until SIGINT or SIGTERM, then shut down gracefully: the worker starts no new poll and
    waits (at most `_drain.POLL_DRAIN`) for those in flight to be answered, so no task is handed
    to a poll as it is cancelled; then running activities get the worker's
    `graceful_shutdown_timeout` to finish, and what is left is cancelled and reported, so the
    server retries it on another worker without waiting for a timeout.

    With DURABLE_AGENT_READY_FILE set, that file exists while Temporal lists this worker as
    a poller of its task queue, until SIGTERM (deploy/k8s: the readiness probe)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from durable_agent.activities.mcp import close_connections

    ready = Path(os.environ[READY_FILE_VARIABLE]) if os.environ.get(READY_FILE_VARIABLE) else None
    async with worker:
        log.info("worker serving task queue %s", worker.task_queue)
        marking = asyncio.create_task(_mark_ready(worker, ready)) if ready else None
        await stop.wait()
        log.info("shutting down")
        if marking is not None and ready is not None:
            marking.cancel()
            await asyncio.to_thread(ready.unlink, missing_ok=True)  # not ready from SIGTERM on
        await _drain.stop_polling(worker)
    await close_connections()
