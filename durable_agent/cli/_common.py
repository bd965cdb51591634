"""What every group of verbs shares: how a verb is added (with the connection flags), the
connection, argument types, JSON output, and the checks a command makes before it waits."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import WorkflowExecutionDescription, WorkflowExecutionStatus

from ..client import AgentClient
from ..wire import EVENT_SOURCES, EventSource, File, Image, attachment_from_path
from ..worker import DEFAULT_TASK_QUEUE
from .errors import CliError

__all__ = [
    "Commands",
    "Handler",
    "add_file_option",
    "connect",
    "content",
    "events",
    "open_run",
    "print_json",
    "seconds",
    "warn_without_worker",
    "worker_polls",
]

Handler = Callable[[argparse.Namespace], Awaitable[None]]


class Commands:
    """The subcommands: each group adds its verbs here."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._sub = sub

    def add(
        self, name: str, handler: Handler, help: str, connects: bool = True
    ) -> argparse.ArgumentParser:
        """A verb; one that `connects` takes the connection flags."""
        p = self._sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        if connects:
            p.add_argument(
                "--address", help="host:port (default: TEMPORAL_ADDRESS or localhost:7233)"
            )
            p.add_argument("--namespace", help="default: TEMPORAL_NAMESPACE or 'default'")
            p.add_argument("--profile", help="profile of Temporal's config file")
            p.add_argument("--api-key", help="default: TEMPORAL_API_KEY")
            p.add_argument("--task-queue", default=DEFAULT_TASK_QUEUE)
        return p

    def add_on_run(self, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        """A verb about one run: its first argument is the run's workflow id."""
        p = self.add(name, handler, help)
        p.add_argument("workflow_id")
        return p


def events(value: str) -> list[EventSource]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    if chosen == ["all"]:
        return list(EVENT_SOURCES)
    unknown = [v for v in chosen if v not in EVENT_SOURCES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown event source(s) {unknown}; use {EVENT_SOURCES}")
    return chosen  # type: ignore[return-value]


def seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds")
    return number


def attachment(path: str) -> Image | File:
    """`--file PATH`: an image (by its name's type) or any other file, its bytes read now."""
    try:
        return attachment_from_path(path)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from None


def add_file_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`--file PATH`, repeatable, into `args.file`: `what` says what the file comes with."""
    parser.add_argument(
        "--file",
        type=attachment,
        action="append",
        default=[],
        metavar="PATH",
        help=f"an image or a file (PDF, ...) {what}; repeatable",
    )


def content(value: str) -> Any:
    """Tool results may be JSON or plain text."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


async def connect(args: argparse.Namespace) -> AgentClient:
    try:
        return await AgentClient.connect(
            args.task_queue,
            address=args.address,
            namespace=args.namespace,
            profile=args.profile,
            api_key=args.api_key,
        )
    except RuntimeError as exc:  # the SDK's bridge reports a refused connection this way
        where = args.address or "TEMPORAL_ADDRESS or localhost:7233"
        raise CliError(f"cannot connect to Temporal at {where} ({exc})") from exc


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        print(value.model_dump_json(indent=2))
    else:
        print(json.dumps(value, indent=2, default=str))


async def open_run(client: AgentClient, workflow_id: str) -> WorkflowExecutionDescription:
    """The run's description; an error when it has ended (an unknown id fails here too)."""
    description = await client.handle(workflow_id).describe()
    if description.status is not WorkflowExecutionStatus.RUNNING:
        how = description.status.name.lower() if description.status else "closed"
        raise CliError(f"run {workflow_id} has ended ({how})")
    return description


async def worker_polls(client: AgentClient, task_queue: str) -> bool:
    response = await client.client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return bool(response.pollers)


async def warn_without_worker(client: AgentClient, task_queue: str) -> None:
    """Say so when no worker polls the run's task queue: the run would wait silently."""
    if not await worker_polls(client, task_queue):
        print(
            f"no worker polls task queue {task_queue!r}; the run waits until one does. Start one:"
            f" durable-agent worker --agents package.module:agents --task-queue {task_queue}",
            file=sys.stderr,
            flush=True,
        )
