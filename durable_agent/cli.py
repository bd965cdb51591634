"""`durable-agent`: serve, start and drive agent runs. Connection settings come from Temporal's
own environment configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS,
profiles), exactly as the `temporal` CLI reads them; flags override."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydantic
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import CancelledError
from temporalio.service import RPCError, RPCStatusCode

from . import telemetry
from ._causes import cause_message
from ._follow import LivePrinter, answered_after, live_events, stream_end
from ._render import render
from .client import AgentClient
from .encryption import KEY_FILE_VARIABLE, KEYS_VARIABLE, EncryptionCodec, generate_key
from .wire import (
    EventSource,
    Item,
    LiveEvent,
    Snapshot,
    Usage,
    dump_json_schemas,
    parse_cursor,
)
from .worker import DEFAULT_GRACEFUL_TIMEOUT, DEFAULT_TASK_QUEUE

EVENT_SOURCES: tuple[EventSource, ...] = ("agent", "llm", "tool")
GRACEFUL_SECONDS = DEFAULT_GRACEFUL_TIMEOUT.total_seconds()
CANCEL_WAIT_SECONDS = 30.0
"""How long `cancel` waits for the run's result: a worker ends a run within a task (~ms), but
a busy worker may take a while to pick the task up."""


class CliError(Exception):
    """A failure the user can fix: `main` prints its message as one line, no traceback."""


def _events(value: str) -> list[EventSource]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    if chosen == ["all"]:
        return list(EVENT_SOURCES)
    unknown = [v for v in chosen if v not in EVENT_SOURCES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown event source(s) {unknown}; use {EVENT_SOURCES}")
    return chosen  # type: ignore[return-value]


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds")
    return seconds


def _content(value: str) -> Any:
    """Tool results may be JSON or plain text."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


async def _client(args: argparse.Namespace) -> AgentClient:
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


def _print_json(value: Any) -> None:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        print(value.model_dump_json(indent=2))
    else:
        print(json.dumps(value, indent=2, default=str))


async def cmd_worker(args: argparse.Namespace) -> None:
    from .worker import (
        create_worker,
        deployment_config,
        ensure_search_attributes,
        load_agents,
        run_worker,
    )

    try:
        versioning = deployment_config(args.deployment_name, args.build_id)
    except ValueError as exc:
        raise CliError(f"{exc}: pass --deployment-name and --build-id (or neither)") from exc
    sys.path.insert(0, os.getcwd())
    agents = []
    for path in args.agents:
        try:
            agents += load_agents(path)
        except (ImportError, AttributeError, ValueError, TypeError) as exc:
            # load_agents' own messages already name the path; an import error does not.
            detail = str(exc) if path in str(exc) else f"cannot load --agents {path!r}: {exc}"
            raise CliError(detail) from exc
    from . import telemetry

    if args.tracing:
        telemetry.request_tracing()
    if args.metrics_port is not None:  # before connecting: the client takes the runtime then
        telemetry.serve_metrics(f"{args.metrics_host}:{args.metrics_port}")
    client = await _client(args)
    await ensure_search_attributes(client.client)
    worker = create_worker(
        client.client,
        agents,
        task_queue=args.task_queue,
        graceful_shutdown_timeout=timedelta(seconds=args.graceful_timeout),
        deployment_config=versioning,
    )
    await run_worker(worker)


async def cmd_dev(args: argparse.Namespace) -> None:
    from .devserver import start_dev_args

    db = None if args.in_memory else Path(args.db_filename)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    codec = EncryptionCodec.from_environment()
    # The browser calls the codec server, so the UI is told an address a browser can reach.
    host = "127.0.0.1" if args.ip in ("0.0.0.0", "::") else args.ip
    endpoint = f"http://{host}:{args.codec_port}" if codec else None
    argv = start_dev_args(db, args.port, args.ui_port, args.ip, endpoint)
    print(
        f"Temporal dev server on {args.ip}:{args.port}, UI http://{args.ip}:{args.ui_port}"
        + (f", state in {db}" if db else ", in memory"),
        flush=True,
    )
    if codec is None:
        os.execv(argv[0], argv)
    from .codec_server import codec_app, listen, serve_beside, ui_origins

    sock = listen(args.ip, args.codec_port)
    print(
        f"Encryption on (key {codec.keys.current_id}): the UI decodes through {endpoint}",
        flush=True,
    )
    app = codec_app(codec, cors_origins=ui_origins(host, args.ui_port))
    sys.exit(await serve_beside(argv, app, sock))


async def cmd_codec_server(args: argparse.Namespace) -> None:
    from .codec_server import TOKEN_VARIABLE, codec_app, listen, serve, ui_origins

    codec = EncryptionCodec.from_environment()
    if codec is None:
        raise CliError(f"encryption is off: set {KEYS_VARIABLE} or {KEY_FILE_VARIABLE}")
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    origins = args.cors_origin or ui_origins("127.0.0.1", 8233)
    sock = listen(args.host, args.port)
    print(
        f"codec server on http://{args.host}:{args.port} for {', '.join(origins)};"
        f" keys {list(codec.keys.keys)} (current {codec.keys.current_id});"
        + (" bearer token required" if token else " no token"),
        flush=True,
    )
    await serve(codec_app(codec, token=token, cors_origins=origins), sock)


async def cmd_keygen(args: argparse.Namespace) -> None:
    print(f"{args.id}:{generate_key()}")
    print(
        f"set {KEYS_VARIABLE} to this line; to rotate, put a new one first and keep the old",
        file=sys.stderr,
    )


async def cmd_run(args: argparse.Namespace) -> None:
    if args.thread is not None:
        await _run_in_thread(args)
        return
    client = await _client(args)
    handle = await client.start(
        args.agent,
        args.prompt,
        workflow_id=args.workflow_id,
        max_turns=args.max_turns,
        conversation=args.conversation,
    )
    if args.detach:
        print(handle.id)
        await _warn_without_worker(client, client.task_queue)
        return
    print(f"workflow {handle.id}", file=sys.stderr)
    await _follow(client, handle.id, args.events, stream=not args.no_stream)
    await _print_result(client, handle.id)


async def _run_in_thread(args: argparse.Namespace) -> None:
    """`run --thread ID`: the prompt goes to the conversation run ID, which starts with it when
    none is open (`AgentClient.send`, an update-with-start); then the run is followed from where
    its stream stood before the message, until it waits for the next message or ends."""
    if args.workflow_id is not None:
        raise CliError("--thread is the run's workflow id: give --thread or --workflow-id")
    client = await _client(args)
    await _warn_without_worker(client, client.task_queue)
    start = await stream_end(client, args.thread)
    sent = await client.send(
        args.agent, args.prompt, thread_id=args.thread, max_turns=args.max_turns
    )
    if args.detach:
        print(sent.workflow_id)
        return
    print(f"workflow {sent.workflow_id}: {sent.detail}", file=sys.stderr)
    last = await _follow(
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
    client = await _client(args)
    handle = await client.start(
        snapshot.agent,
        workflow_id=args.workflow_id,
        snapshot=snapshot,
        conversation=args.conversation,
    )
    print(handle.id)


async def _follow(
    client: AgentClient,
    workflow_id: str,
    events: Collection[EventSource],
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
        await _warn_without_worker(client, description.task_queue)
    printer = LivePrinter(sys.stdout, events)
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


async def _open_run(client: AgentClient, workflow_id: str) -> WorkflowExecutionDescription:
    """The run's description; an error when it has ended (an unknown id fails here too)."""
    description = await client.handle(workflow_id).describe()
    if description.status is not WorkflowExecutionStatus.RUNNING:
        how = description.status.name.lower() if description.status else "closed"
        raise CliError(f"run {workflow_id} has ended ({how})")
    return description


async def _worker_polls(client: AgentClient, task_queue: str) -> bool:
    response = await client.client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return bool(response.pollers)


async def _warn_without_worker(client: AgentClient, task_queue: str) -> None:
    """Say so when no worker polls the run's task queue: the run would wait silently."""
    if not await _worker_polls(client, task_queue):
        print(
            f"no worker polls task queue {task_queue!r}; the run waits until one does. Start one:"
            f" durable-agent worker --agents package.module:agents --task-queue {task_queue}",
            file=sys.stderr,
            flush=True,
        )


async def cmd_watch(args: argparse.Namespace) -> None:
    try:
        parse_cursor(args.after)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    client = await _client(args)
    last = await _follow(
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


async def cmd_interrupt(args: argparse.Namespace) -> None:
    client = await _client(args)
    description = await _open_run(client, args.workflow_id)
    await _warn_without_worker(client, description.task_queue)
    outcome = await client.interrupt(args.workflow_id, args.content, args.name)
    print(outcome.detail)


async def cmd_cancel(args: argparse.Namespace) -> None:
    """Cancel, then wait (bounded) for the result, which lists the calls that were waiting."""
    client = await _client(args)
    wf = args.workflow_id
    description = await _open_run(client, wf)
    await client.cancel(wf)
    if not await _worker_polls(client, description.task_queue):
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


async def cmd_history(args: argparse.Namespace) -> None:
    client = await _client(args)
    items: list[Item] = []
    page = await client.history(args.workflow_id, args.events)
    items += page.items
    while page.more:
        page = await client.history(args.workflow_id, args.events, since=page.next)
        items += page.items
    if args.json:
        _print_json([i.model_dump(mode="json") for i in items])
    else:
        for item in items:
            print(render(item))


async def cmd_export(args: argparse.Namespace) -> None:
    print((await (await _client(args)).snapshot(args.workflow_id)).model_dump_json(indent=2))


async def cmd_status(args: argparse.Namespace) -> None:
    _print_json(await (await _client(args)).status(args.workflow_id))


async def cmd_pending(args: argparse.Namespace) -> None:
    pending = await (await _client(args)).pending(args.workflow_id)
    _print_json([p.model_dump(mode="json") for p in pending])


async def cmd_resolve(args: argparse.Namespace) -> None:
    client = await _client(args)
    _print_json(
        await client.resolve(
            args.workflow_id, args.tool_call_id, _content(args.content), is_error=args.error
        )
    )


async def cmd_approve(args: argparse.Namespace) -> None:
    client = await _client(args)
    approved = args.command == "approve"
    decision = client.decide(
        args.workflow_id, args.tool_call_id, approved, args.reason, digest=args.digest
    )
    _print_json(await decision)


async def cmd_say(args: argparse.Namespace) -> None:
    _print_json(await (await _client(args)).say(args.workflow_id, args.content, args.name))


async def cmd_list(args: argparse.Namespace) -> None:
    query = f"AgentStatus = '{args.status}'" if args.status else args.query
    async for run in (await _client(args)).list(query):
        attrs = run.typed_search_attributes
        agent = next((p.value for p in attrs if p.key.name == "AgentName"), "")
        state = next((p.value for p in attrs if p.key.name == "AgentStatus"), "")
        status = run.status.name if run.status else "?"
        print(f"{run.id:<40} {status:<12} {agent!s:<16} {state}")


async def cmd_schema(args: argparse.Namespace) -> None:
    schemas = dump_json_schemas()
    _print_json(schemas[args.shape] if args.shape else schemas)


async def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    await run_demo(args.prompt)


async def cmd_mcp_serve(args: argparse.Namespace) -> None:
    from .mcp_serve import listen, mcp_server, serve_http, serve_stdio
    from .worker import load_agents

    sys.path.insert(0, os.getcwd())
    try:
        agents = load_agents(args.agents)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        detail = str(exc) if args.agents in str(exc) else f"cannot load {args.agents!r}: {exc}"
        raise CliError(detail) from exc
    by_name = {a.name: a for a in agents}
    if unknown := [n for n in args.agent or () if n not in by_name]:
        raise CliError(f"{args.agents} has no agent {unknown[0]!r} (it has: {', '.join(by_name)})")
    agents = [by_name[n] for n in args.agent] if args.agent else agents
    try:
        sock = listen(args.host, args.port) if args.transport == "http" else None
        client = await _client(args)
        server = mcp_server(agents, client)
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    await _warn_without_worker(client, client.task_queue)
    where = "stdio" if sock is None else f"http://{args.host}:{args.port}/mcp"
    names = ", ".join(a.name for a in agents)
    print(f"MCP tools {names} on {where}, task queue {client.task_queue!r}", file=sys.stderr)
    if sock is None:
        await serve_stdio(server)  # stdout is the protocol's: everything else goes to stderr
    else:
        await serve_http(server, args.host, sock)


async def cmd_serve(args: argparse.Namespace) -> None:
    from .serve import TOKEN_VARIABLE, create_app, listen, serve

    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        raise CliError(exc.strerror or str(exc)) from exc
    client = await _client(args)
    await _warn_without_worker(client, client.task_queue)
    print(
        f"durable-agent serve on http://{args.host}:{args.port} (docs at /docs), task queue"
        f" {client.task_queue!r};" + (" bearer token required" if token else " no token"),
        file=sys.stderr,
        flush=True,
    )
    await serve(create_app(client, token=token), sock)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="durable-agent", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (before the command)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str, handler: Any, help: str, connects: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
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

    def wf(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("workflow_id")
        return p

    p = command("dev", cmd_dev, "start the Temporal dev server with our settings", connects=False)
    p.add_argument("--db-filename", default=".durable-agent/temporal.db")
    p.add_argument("--in-memory", action="store_true", help="keep no state file")
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7233)
    p.add_argument("--ui-port", type=int, default=8233)
    p.add_argument(
        "--codec-port", type=int, default=8081, help="the UI's codec server, when encryption is on"
    )

    p = command("codec-server", cmd_codec_server, "decode payloads for the web UI and CLI", False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument(
        "--token", help="require Authorization: Bearer TOKEN (default: DURABLE_AGENT_CODEC_TOKEN)"
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        help="the web UI's origin, repeatable (default: http://localhost:8233 and 127.0.0.1)",
    )

    p = command("keygen", cmd_keygen, "print a new encryption key entry (kid:base64key)", False)
    p.add_argument("--id", default=f"k{datetime.now(UTC):%Y%m%d}", help="key id (default: kDATE)")

    p = command("worker", cmd_worker, "serve agents from an import path")
    p.add_argument("--agents", action="append", required=True, metavar="pkg.module:attr")
    p.add_argument(
        "--graceful-timeout",
        type=_seconds,
        default=os.environ.get("DURABLE_AGENT_GRACEFUL_TIMEOUT", str(GRACEFUL_SECONDS)),
        metavar="SECONDS",
        help="on SIGTERM, how long running tools and model calls may finish before they are"
        " cancelled and retried elsewhere (default: DURABLE_AGENT_GRACEFUL_TIMEOUT or"
        f" {GRACEFUL_SECONDS:g}; keep it below your orchestrator's kill delay)",
    )
    p.add_argument(
        "--deployment-name",
        default=os.environ.get("DURABLE_AGENT_DEPLOYMENT_NAME"),
        help="Worker Versioning: the worker deployment (default: DURABLE_AGENT_DEPLOYMENT_NAME;"
        " neither it nor --build-id: an unversioned worker)",
    )
    p.add_argument(
        "--build-id",
        default=os.environ.get("DURABLE_AGENT_BUILD_ID"),
        help="Worker Versioning: this build's id (default: DURABLE_AGENT_BUILD_ID)",
    )
    p.add_argument(
        "--tracing",
        action="store_true",
        help="export OpenTelemetry traces over OTLP/HTTP (on anyway when"
        " OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; without"
        " either, to localhost:4318)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=os.environ.get("DURABLE_AGENT_METRICS_PORT"),
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default:"
        " DURABLE_AGENT_METRICS_PORT; neither: no metrics)",
    )
    p.add_argument(
        "--metrics-host",
        default=os.environ.get("DURABLE_AGENT_METRICS_HOST", "127.0.0.1"),
        metavar="HOST",
        help="the metrics endpoint's address (default: DURABLE_AGENT_METRICS_HOST or 127.0.0.1;"
        " 0.0.0.0 for a container)",
    )

    p = command("run", cmd_run, "start a run and print its conversation as it goes")
    p.add_argument("agent")
    p.add_argument("prompt")
    p.add_argument("--detach", action="store_true", help="print the workflow id and exit")
    p.add_argument("--workflow-id")
    p.add_argument("--max-turns", type=int)
    p.add_argument("--conversation", action="store_true", help="stay open for user messages")
    p.add_argument(
        "--thread",
        metavar="ID",
        help="the conversation run ID: started with this prompt if none is open, else the prompt"
        " is its next message; followed until it waits for the next one",
    )
    p.add_argument("--events", type=_events, default=list(EVENT_SOURCES))
    p.add_argument("--no-stream", action="store_true", help="print replies when they land")

    p = command("start", cmd_start, "start a new run from an exported snapshot (resume or fork)")
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

    p = wf(command("watch", cmd_watch, "follow a live run until it ends"))
    p.add_argument("--events", type=_events, default=list(EVENT_SOURCES))
    p.add_argument("--no-stream", action="store_true", help="print replies when they land")
    p.add_argument("--after", metavar="CURSOR", help="resume after this event id (see --json)")
    p.add_argument("--json", action="store_true", help="one event a line, with its id")
    p = wf(command("history", cmd_history, "print a run's conversation"))
    p.add_argument("--events", type=_events, default=[], help="agent,llm,tool or all")
    p.add_argument("--json", action="store_true")
    wf(command("export", cmd_export, "write the conversation snapshot as JSON"))
    wf(command("status", cmd_status, "state, agent, turn and token usage"))
    wf(command("pending", cmd_pending, "the tool calls waiting for a signal"))

    p = wf(command("resolve", cmd_resolve, "give a waiting tool call its result"))
    p.add_argument("tool_call_id")
    p.add_argument("content", help="JSON or text")
    p.add_argument("--error", action="store_true", help="the result is an error")
    for verb in ("approve", "reject"):
        p = wf(command(verb, cmd_approve, f"{verb} a tool call that needs approval"))
        p.add_argument("tool_call_id")
        p.add_argument("--reason")
        p.add_argument("--digest", help="the pending call's digest: refused if it differs")
    p = wf(command("say", cmd_say, "send a user message"))
    p.add_argument("content")
    p.add_argument("--name")
    p = wf(
        command(
            "interrupt",
            cmd_interrupt,
            "send a user message now: a model call in flight is cut off, the message answered next",
        )
    )
    p.add_argument("content")
    p.add_argument("--name")
    p = wf(command("cancel", cmd_cancel, "end a run; print the calls that were still waiting"))
    p.add_argument(
        "--wait",
        type=_seconds,
        default=CANCEL_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for the run to end (default: {CANCEL_WAIT_SECONDS:g})",
    )

    p = command("list", cmd_list, "list agent runs")
    p.add_argument("--status", help="e.g. waiting_for_tools")
    p.add_argument("--query", help="a Temporal list filter")

    p = command(
        "schema",
        cmd_schema,
        "JSON Schema of every shape: input, output, signals, updates, queries",
        False,
    )
    p.add_argument("shape", nargs="?", choices=sorted(dump_json_schemas()))

    p = command("demo", cmd_demo, "embedded server, worker and an agent run, end to end", False)
    p.add_argument("--prompt", default="My order A-1001 arrived broken. Can I get a refund?")

    p = command("mcp-serve", cmd_mcp_serve, "offer agents as MCP tools (stdio or HTTP)")
    p.add_argument("agents", metavar="pkg.module:attr", help="the agents, as for `worker`")
    p.add_argument("--agent", action="append", help="offer only this agent (repeatable)")
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="for http (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="for http: streamable HTTP at /mcp")

    p = command("serve", cmd_serve, "runs over HTTP, with their live streams as Server-Sent Events")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--token", help="require Authorization: Bearer TOKEN (default: DURABLE_AGENT_SERVE_TOKEN)"
    )
    return parser


def error_line(exc: BaseException, args: argparse.Namespace) -> str:
    """One line for stderr that says what went wrong."""
    if isinstance(exc, WorkflowUpdateFailedError):
        line = f"refused: {exc.cause or exc}"
    elif (
        isinstance(exc, RPCError)
        and exc.status is RPCStatusCode.NOT_FOUND
        and (workflow_id := getattr(args, "workflow_id", None))
    ):
        ended = "already completed" in exc.message  # the server's words for a closed run
        line = (
            f"error: run {workflow_id} has ended"
            if ended
            else f"error: no run with id {workflow_id}"
        )
    elif isinstance(exc, RPCError):
        line = f"error: {exc.message}"
    elif isinstance(exc, WorkflowFailureError):
        line = f"error: the run failed: {cause_message(exc)}"
    elif isinstance(exc, CliError):
        line = f"error: {exc}"
    else:
        line = f"error: {type(exc).__name__}: {exc} (--debug shows the traceback)"
    return " ".join(line.split())


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("DURABLE_AGENT_LOG", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    code = 0
    try:
        asyncio.run(args.handler(args))
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(error_line(exc, args), file=sys.stderr)
        code = 1
    # The Temporal client's Rust runtime threads can crash CPython's finalization at exit
    # (temporalio/sdk-python#300; we saw SIGSEGV in about 1 of 6 short commands): skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    telemetry.shutdown()  # os._exit runs no atexit hook: export the batched spans first
    os._exit(code)
