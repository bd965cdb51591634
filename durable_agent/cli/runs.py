"""Verbs that start runs and read them: run, start, watch, history, export, status, list,
schema."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection
from pathlib import Path

import pydantic
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from .._causes import cause_message
from .._follow import answered_after, live_events, stream_end
from .._render import render
from ..authoring._agent import Agent, handoff_graph
from ..client import AgentClient
from ..wire import (
    EVENT_SOURCES,
    EventSource,
    Item,
    LiveEvent,
    Snapshot,
    Usage,
    UserMessage,
    dump_json_schemas,
    parse_cursor,
)
from ..worker import load_agents
from ._common import Commands, add_file_option, connect, events, print_json, warn_without_worker
from .errors import CliError
from .printer import LivePrinter

__all__ = ["register"]


async def cmd_run(args: argparse.Namespace) -> None:
    if args.thread is not None:
        await _run_in_thread(args)
        return
    client = await connect(args)
    # With files, the prompt is a user message carrying them (their bytes go to storage).
    message = UserMessage(content=args.prompt, attachments=args.file)
    handle = await client.start(
        args.agent,
        None if args.file else args.prompt,
        messages=[message] if args.file else [],
        workflow_id=args.workflow_id,
        max_turns=args.max_turns,
        conversation=args.conversation,
    )
    if args.detach:
        print(handle.id)
        await warn_without_worker(client, client.task_queue)
        return
    print(f"workflow {handle.id}", file=sys.stderr)
    await follow(client, handle.id, args.events, stream=not args.no_stream)
    await _print_result(client, handle.id)


async def _run_in_thread(args: argparse.Namespace) -> None:
    """`run --thread ID`: the prompt goes to the conversation run ID, which starts with it when
    none is open (`AgentClient.send`, an update-with-start); then the run is followed from where
    its stream stood before the message, until it waits for the next message or ends."""
    if args.workflow_id is not None:
        raise CliError("--thread is the run's workflow id: give --thread or --workflow-id")
    client = await connect(args)
    await warn_without_worker(client, client.task_queue)
    start = await stream_end(client, args.thread)
    sent = await client.send(
        args.agent,
        args.prompt,
        thread_id=args.thread,
        max_turns=args.max_turns,
        attachments=args.file,
    )
    if args.detach:
        print(sent.workflow_id)
        return
    print(f"workflow {sent.workflow_id}: {sent.detail}", file=sys.stderr)
    last = await follow(
        client,
        sent.workflow_id,
        args.events,
        stream=not args.no_stream,
        after=start,
        until=answered_after(args.prompt),
    )
    if last is None or last.type == "end":
        await _print_result(client, sent.workflow_id)
        return
    status = await client.status(sent.workflow_id)
    print(
        f"\n{_totals(status.turn, status.usage)}; the thread waits for your next message",
        file=sys.stderr,
    )


async def _print_result(client: AgentClient, workflow_id: str) -> None:
    try:
        result = await client.result(workflow_id)
    except WorkflowFailureError as exc:
        raise CliError(f"run {workflow_id} failed: {cause_message(exc)}") from exc
    ending = "" if result.outcome == "completed" else f"; {result.outcome}"
    if result.reason:  # why it stopped: a guardrail, a budget, a hook
        ending += f": {result.reason}"
    if result.output is not None:  # the typed answer, as JSON, on stdout
        print_json(result.output)
    print(f"\n{_totals(result.turns, result.usage)}{ending}", file=sys.stderr)


def _totals(turns: int, usage: Usage) -> str:
    return f"{turns} turns, {usage.input_tokens} tokens in, {usage.output_tokens} out"


async def cmd_start(args: argparse.Namespace) -> None:
    try:
        snapshot = Snapshot.model_validate_json(Path(args.from_file).read_text())  # noqa: ASYNC240
    except OSError as exc:
        raise CliError(f"cannot read --from {args.from_file}: {exc.strerror}") from exc
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(
            f"--from {args.from_file} is not an exported snapshot"
            f" ({where + ': ' if where else ''}{first['msg']})"
        ) from exc
    if args.until is not None:
        snapshot = snapshot.prefix(args.until)
    client = await connect(args)
    handle = await client.start(
        snapshot.agent,
        workflow_id=args.workflow_id,
        snapshot=snapshot,
        conversation=args.conversation,
    )
    print(handle.id)


async def follow(
    client: AgentClient,
    workflow_id: str,
    sources: Collection[EventSource],
    *,
    stream: bool = True,
    after: str | None = None,
    until: Callable[[LiveEvent], bool] | None = None,
    as_json: bool = False,
) -> LiveEvent | None:
    """Print the run's live stream from `after` (the model's reply as it streams, unless not
    `stream`) until the run ends or `until` says stop; return the last event."""
    description = await client.handle(workflow_id).describe()  # an unknown id fails here
    if description.status is WorkflowExecutionStatus.RUNNING:
        await warn_without_worker(client, description.task_queue)
    printer = LivePrinter(sys.stdout, sources)
    last = None
    try:
        async for last in live_events(client, workflow_id, after, stream):
            if as_json:
                print(last.model_dump_json(), flush=True)
            else:
                printer.show(last)
            if until is not None and until(last):
                break
    finally:
        printer.close()
    return last


async def cmd_watch(args: argparse.Namespace) -> None:
    try:
        parse_cursor(args.after)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    client = await connect(args)
    last = await follow(
        client,
        args.workflow_id,
        args.events,
        stream=not args.no_stream,
        after=args.after,
        as_json=args.json,
    )
    description = await client.handle(args.workflow_id).describe()
    if last is not None and description.status is not WorkflowExecutionStatus.COMPLETED:
        # Failed, terminated or timed out: the stream itself may not say so.
        how = description.status.name.lower() if description.status else "closed"
        print(f"run {args.workflow_id} {how} while {last.state.value}", file=sys.stderr)


async def cmd_history(args: argparse.Namespace) -> None:
    client = await connect(args)
    items: list[Item] = []
    page = await client.history(args.workflow_id, args.events)
    items += page.items
    while page.more:
        page = await client.history(args.workflow_id, args.events, since=page.next)
        items += page.items
    if args.json:
        print_json([i.model_dump(mode="json") for i in items])
    else:
        for item in items:
            print(render(item))


async def cmd_export(args: argparse.Namespace) -> None:
    print((await (await connect(args)).snapshot(args.workflow_id)).model_dump_json(indent=2))


async def cmd_status(args: argparse.Namespace) -> None:
    print_json(await (await connect(args)).status(args.workflow_id))


async def cmd_list(args: argparse.Namespace) -> None:
    query = f"AgentStatus = '{args.status}'" if args.status else args.query
    async for run in (await connect(args)).list(query):
        attrs = run.typed_search_attributes
        agent = next((p.value for p in attrs if p.key.name == "AgentName"), "")
        state = next((p.value for p in attrs if p.key.name == "AgentStatus"), "")
        status = run.status.name if run.status else "?"
        print(f"{run.id:<40} {status:<12} {agent!s:<16} {state}")


async def cmd_schema(args: argparse.Namespace) -> None:
    if args.agents:
        print_json({"agents": output_schemas(args.agents)})
        return
    schemas = dump_json_schemas()
    print_json(schemas[args.shape] if args.shape else schemas)


def output_schemas(paths: list[str]) -> dict[str, object]:
    """Each agent's final answer schema (`output_type`; plain text: `{"type": "string"}`),
    with the agents it hands off to and its sub-agents."""
    agents: dict[str, Agent] = {}
    for path in paths:
        try:
            found = handoff_graph(load_agents(path))
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            detail = str(exc) if path in str(exc) else f"cannot load --agents {path!r}: {exc}"
            raise CliError(detail) from exc
        agents.update(found)
    schemas: dict[str, object] = {}
    for name, agent in sorted(agents.items()):
        spec = agent.output
        schemas[name] = {"type": "string"} if spec is None else spec.adapter.json_schema()
    return schemas


def register(commands: Commands) -> None:
    p = commands.add("run", cmd_run, "start a run and print its conversation as it goes")
    p.add_argument("agent")
    p.add_argument("prompt")
    p.add_argument("--detach", action="store_true", help="print the workflow id and exit")
    p.add_argument("--workflow-id")
    p.add_argument("--max-turns", type=int)
    p.add_argument("--conversation", action="store_true", help="stay open for user messages")
    add_file_option(p, "the prompt comes with")
    p.add_argument(
        "--thread",
        metavar="ID",
        help="the conversation run ID: started with this prompt if none is open, else the prompt"
        " is its next message; followed until it waits for the next one",
    )
    p.add_argument("--events", type=events, default=list(EVENT_SOURCES))
    p.add_argument("--no-stream", action="store_true", help="print replies when they land")

    p = commands.add(
        "start", cmd_start, "start a new run from an exported snapshot (resume or fork)"
    )
    p.add_argument("--from", dest="from_file", required=True, metavar="conv.json")
    p.add_argument(
        "--until",
        type=int,
        help="a fork: keep the first N messages (status events are not counted)",
    )
    p.add_argument("--workflow-id")
    p.add_argument(
        "--conversation",
        action="store_true",
        help="stay open for user messages, as `run --conversation` (a snapshot does not keep it)",
    )

    p = commands.add_on_run("watch", cmd_watch, "follow a live run until it ends")
    p.add_argument("--events", type=events, default=list(EVENT_SOURCES))
    p.add_argument("--no-stream", action="store_true", help="print replies when they land")
    p.add_argument("--after", metavar="CURSOR", help="resume after this event id (see --json)")
    p.add_argument("--json", action="store_true", help="one event a line, with its id")
    p = commands.add_on_run("history", cmd_history, "print a run's conversation")
    p.add_argument("--events", type=events, default=[], help="agent,llm,tool or all")
    p.add_argument("--json", action="store_true")
    commands.add_on_run("export", cmd_export, "write the conversation snapshot as JSON")
    commands.add_on_run("status", cmd_status, "state, agent, turn and token usage")

    p = commands.add("list", cmd_list, "list agent runs")
    p.add_argument("--status", help="e.g. waiting_for_tools")
    p.add_argument("--query", help="a Temporal list filter")

    p = commands.add(
        "schema",
        cmd_schema,
        "JSON Schema of every shape: input, output, signals, updates, queries",
        False,
    )
    p.add_argument("shape", nargs="?", choices=sorted(dump_json_schemas()))
    p.add_argument(
        "--agents",
        action="append",
        metavar="pkg.module:attr",
        help="print these agents' output schemas (their output_type) instead",
    )
