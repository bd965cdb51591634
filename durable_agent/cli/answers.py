"""Verbs that answer a run or steer it: pending, resolve, approve, reject, say, interrupt,
cancel."""

from __future__ import annotations

import argparse
import asyncio

from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError

from .._causes import cause_message
from ._common import (
    Commands,
    add_file_option,
    connect,
    content,
    open_run,
    print_json,
    seconds,
    warn_without_worker,
    worker_polls,
)
from .errors import CliError

__all__ = ["CANCEL_WAIT_SECONDS", "register"]

CANCEL_WAIT_SECONDS = 30.0
"""How long `cancel` waits for the run's result: a worker ends a run within a task (~ms), but
a busy worker may take a while to pick the task up."""


async def cmd_pending(args: argparse.Namespace) -> None:
    pending = await (await connect(args)).pending(args.workflow_id)
    print_json([p.model_dump(mode="json") for p in pending])


async def cmd_resolve(args: argparse.Namespace) -> None:
    client = await connect(args)
    print_json(
        await client.resolve(
            args.workflow_id,
            args.tool_call_id,
            content(args.content),
            is_error=args.error,
            attachments=args.file,
        )
    )


async def cmd_approve(args: argparse.Namespace) -> None:
    client = await connect(args)
    approved = args.command == "approve"
    decision = client.decide(
        args.workflow_id, args.tool_call_id, approved, args.reason, digest=args.digest
    )
    print_json(await decision)


async def cmd_say(args: argparse.Namespace) -> None:
    client = await connect(args)
    print_json(await client.say(args.workflow_id, args.content, args.name, attachments=args.file))


async def cmd_interrupt(args: argparse.Namespace) -> None:
    client = await connect(args)
    description = await open_run(client, args.workflow_id)
    await warn_without_worker(client, description.task_queue)
    outcome = await client.interrupt(
        args.workflow_id, args.content, args.name, attachments=args.file
    )
    print(outcome.detail)


async def cmd_cancel(args: argparse.Namespace) -> None:
    """Cancel, then wait (bounded) for the result, which lists the calls that were waiting."""
    client = await connect(args)
    wf = args.workflow_id
    description = await open_run(client, wf)
    await client.cancel(wf)
    if not await worker_polls(client, description.task_queue):
        raise CliError(
            f"cancel requested, but no worker polls task queue {description.task_queue!r}:"
            f" run {wf} ends when one does"
        )
    try:
        result = await asyncio.wait_for(client.result(wf), args.wait)
    except TimeoutError:
        raise CliError(
            f"cancel requested, but run {wf} has not ended after {args.wait:g} s (is its worker"
            f" busy?): `durable-agent status {wf}` says when it has"
        ) from None
    except WorkflowFailureError as exc:
        if isinstance(exc.cause, CancelledError):  # a version before cancel-with-result
            print("cancelled")
            return
        raise CliError(f"run {wf} failed: {cause_message(exc)}") from exc
    if result.outcome != "cancelled":
        print(f"not cancelled: the run ended first ({result.outcome})")
        return
    ids = [p.tool_call_id for p in result.pending]
    if not ids:
        print("cancelled; no call was waiting")
    elif len(ids) == 1:
        print(f"cancelled; 1 call was waiting: {ids[0]}")
    else:
        print(f"cancelled; {len(ids)} calls were waiting: {', '.join(ids)}")


def register(commands: Commands) -> None:
    commands.add_on_run("pending", cmd_pending, "the tool calls waiting for a signal")
    p = commands.add_on_run("resolve", cmd_resolve, "give a waiting tool call its result")
    p.add_argument("tool_call_id")
    p.add_argument("content", help="JSON or text")
    p.add_argument("--error", action="store_true", help="the result is an error")
    add_file_option(p, "the model sees with the result")
    for verb in ("approve", "reject"):
        p = commands.add_on_run(verb, cmd_approve, f"{verb} a tool call that needs approval")
        p.add_argument("tool_call_id")
        p.add_argument("--reason")
        p.add_argument("--digest", help="the pending call's digest: refused if it differs")
    p = commands.add_on_run("say", cmd_say, "send a user message")
    p.add_argument("content")
    p.add_argument("--name")
    add_file_option(p, "sent with the message")
    p = commands.add_on_run(
        "interrupt",
        cmd_interrupt,
        "send a user message now: a model call in flight is cut off, the message answered next",
    )
    p.add_argument("content")
    p.add_argument("--name")
    add_file_option(p, "sent with the message")
    p = commands.add_on_run(
        "cancel", cmd_cancel, "end a run; print the calls that were still waiting"
    )
    p.add_argument(
        "--wait",
        type=seconds,
        default=CANCEL_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for the run to end (default: {CANCEL_WAIT_SECONDS:g})",
    )
