"""The real parts a storm runs on: a dev server on a state file that can be restarted (or
killed), and `durable-agent worker` processes that can be SIGKILLed and replaced."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowQueryFailedError
from temporalio.service import RPCError

from durable_agent import AgentRunResult, HistoryPage, HistoryQuery, Message, StatusEvent
from durable_agent.devserver import start_dev_args
from durable_agent.wire import MODEL_ACTIVITY
from durable_agent.worker import connect

from . import journal
from .tally import Run

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevServer:
    """`durable-agent dev`'s settings, headless, in a process of its own on `db_file`."""

    def __init__(self, db_file: Path) -> None:
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self.argv = [*start_dev_args(db_file, port, free_port(), "127.0.0.1"), "--headless"]
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> float:
        """Start it; seconds until it accepts connections."""
        began = time.monotonic()
        self.process = subprocess.Popen(  # noqa: ASYNC220 - a background server, not awaited
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        host, port = self.address.split(":")
        for _ in range(600):
            try:
                _, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return time.monotonic() - began
        raise RuntimeError(f"the dev server did not accept connections on {self.address}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


class Workers:
    """`durable-agent worker` processes on one task queue, as a user starts them."""

    def __init__(self, address: str, queue: str, workdir: Path, env: dict[str, str]) -> None:
        self.address, self.queue, self.workdir = address, queue, workdir
        self.env = {
            **os.environ,
            journal.LOG_ENV: str(workdir / "log.jsonl"),
            journal.EFFECTS_ENV: str(workdir / "effects"),
            **env,
        }
        (workdir / "effects").mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.kills: list[tuple[float, int]] = []
        """(wall time, pid) of each SIGKILL."""
        self.replaced = 0
        """Workers found dead (not by a kill of ours) and started again."""

    @property
    def log(self) -> Path:
        return self.workdir / "log.jsonl"

    def spawn(self) -> subprocess.Popen[bytes]:
        with (self.workdir / "workers.stderr").open("ab") as stderr:
            return subprocess.Popen(
                [
                    *(str(BIN / "durable-agent"), "worker", "--agents", "faults.agents:agents"),
                    *("--address", self.address, "--task-queue", self.queue),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    async def start(self, count: int, client: Client) -> None:
        self.processes = [self.spawn() for _ in range(count)]
        for process in self.processes:
            await _until(partial(polls, client, self.queue, process), f"worker {process.pid}")

    async def kill_one(self, rng: random.Random, client: Client) -> int | None:
        """SIGKILL a worker at random among those that poll, and start another at once; the
        killed pid. None, and no kill, unless at least two poll: a worker still starting (its
        imports take seconds on a busy machine) serves nothing, and killing it shows nothing."""
        serving = [
            i
            for i, p in enumerate(self.processes)
            if p.poll() is None and await polls(client, self.queue, p)
        ]
        if len(serving) < 2:
            return None
        i = rng.choice(serving)
        victim = self.processes[i]
        self.kills.append((time.time(), victim.pid))
        victim.kill()
        victim.wait()
        self.processes[i] = self.spawn()
        return victim.pid

    def keep_alive(self) -> None:
        """Replace a worker that exited on its own (none should)."""
        for i, process in enumerate(self.processes):
            if process.poll() is not None:
                self.replaced += 1
                self.processes[i] = self.spawn()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()


async def polls(client: Client, queue: str, worker: subprocess.Popen[bytes]) -> bool:
    """Whether `worker` polls `queue` for workflow tasks (its identity is `pid@host`)."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return any(p.identity.startswith(f"{worker.pid}@") for p in response.pollers)


async def _until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


async def client_for(address: str, seconds: float = 30) -> Client:
    """A client, once the server's frontend is healthy (it accepts connections before)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await connect(address)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def through_outages(call: Callable[[], Awaitable[T]], seconds: float = 90) -> T:
    """`call`, again while the server is unreachable (a restart), for up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await call()
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def outcome(
    client: Client, workflow_id: str, seconds: float
) -> tuple[AgentRunResult | None, str]:
    """The run's result once it ends (waiting through server restarts), or None and why not:
    its failure, or "stuck" when `seconds` passed first ("stranded" when nothing pending can
    ever wake it, see `skipped_model_result`)."""
    handle = client.get_workflow_handle(workflow_id, result_type=AgentRunResult)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            return await asyncio.wait_for(handle.result(), timeout=left), "completed"
        except RPCError:
            await asyncio.sleep(0.2)  # the server is restarting
        except TimeoutError:
            break
        except WorkflowFailureError as exc:
            return None, f"failed: {exc.cause}"
    with contextlib.suppress(RPCError):
        if await skipped_model_result(client, workflow_id):
            return None, STRANDED
    return None, "stuck"


STRANDED = (
    "stranded: the workflow task after its model call's result issued no command and none is"
    " pending (a worker skipped that result: SDK core 1.35, README 'Fault storms')"
)


async def skipped_model_result(client: Client, workflow_id: str) -> bool:
    """Whether the run's history ends with a workflow task that answered a model call's result
    with no command. The loop always acts on a model reply (a tool call, a wait, its end), so
    such a run waits for a result its worker never saw, with nothing on the server to wake it.
    Storm (d) left one (2026-12-06): a worker had cached the run from a query whose history
    ended in a speculative task's events, then skipped the real events reusing their ids."""
    handle = client.get_workflow_handle(workflow_id)
    if (await handle.describe()).raw_description.HasField("pending_workflow_task"):
        return False
    activity_types: dict[int, str] = {}
    since_task: list[int] = []  # results since the last completed workflow task
    answered: list[int] = []  # the results that task answered
    last = EventType.EVENT_TYPE_UNSPECIFIED
    async for event in handle.fetch_history_events():
        last = event.event_type
        if last == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            activity_types[event.event_id] = name
        elif last == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            since_task.append(event.activity_task_completed_event_attributes.scheduled_event_id)
        elif last == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            answered, since_task = since_task, []
    ended_on_task = last == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    return ended_on_task and any(activity_types.get(i) == MODEL_ACTIVITY for i in answered)


async def conversation(client: Client, workflow_id: str) -> list[Message]:
    """The messages of a run so far, through the `history` query (a worker must be up)."""
    handle = client.get_workflow_handle(workflow_id)
    items: list[Message] = []
    since = 0
    while True:
        page = await handle.query("history", HistoryQuery(since=since), result_type=HistoryPage)
        items += [i for i in page.items if not isinstance(i, StatusEvent)]
        if not page.more:
            return items
        since = page.next


async def settle(client: Client, run: Run, seconds: float) -> None:
    """Wait for the run's end and keep its conversation; a run that is stuck or failed keeps
    what the `history` query shows, so its messages are counted too."""
    result, run.outcome = await outcome(client, run.workflow_id, seconds)
    run.ended = time.monotonic()
    if result is not None:
        run.messages = result.messages
        return
    with contextlib.suppress(RPCError, WorkflowQueryFailedError):
        run.messages = await conversation(client, run.workflow_id)
