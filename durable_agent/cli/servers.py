"""Verbs that run a process: dev, worker, codec-server, keygen, demo, mcp-serve, serve.

Each verb imports its server when it runs, not when the CLI starts: FastAPI, uvicorn and the
MCP SDK add about 2 s to the start of every other command (measured: `import durable_agent.cli`
2.6 s, with `durable_agent.serve` 4.5 s, on a loaded 2-core machine)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .. import telemetry
from ..encryption import KEY_FILE_VARIABLE, KEYS_VARIABLE, EncryptionCodec, generate_key
from ..worker import (
    DEFAULT_GRACEFUL_TIMEOUT,
    create_worker,
    deployment_config,
    ensure_search_attributes,
    load_agents,
    run_worker,
)
from ._common import Commands, connect, seconds, warn_without_worker
from .errors import CliError

__all__ = ["register"]

GRACEFUL_SECONDS = DEFAULT_GRACEFUL_TIMEOUT.total_seconds()
_LOAD_ERRORS = (ImportError, AttributeError, ValueError, TypeError)
"""What loading `--agents pkg.module:attr` raises for a path that is wrong."""


async def cmd_worker(args: argparse.Namespace) -> None:
    try:
        versioning = deployment_config(args.deployment_name, args.build_id)
    except ValueError as exc:
        raise CliError(f"{exc}: pass --deployment-name and --build-id (or neither)") from exc
    sys.path.insert(0, os.getcwd())
    agents = []
    for path in args.agents:
        try:
            agents += load_agents(path)
        except _LOAD_ERRORS as exc:
            # load_agents' own messages already name the path; an import error does not.
            detail = str(exc) if path in str(exc) else f"cannot load --agents {path!r}: {exc}"
            raise CliError(detail) from exc
    if args.tracing:
        telemetry.request_tracing()
    if args.metrics_port is not None:  # before connecting: the client takes the runtime then
        telemetry.serve_metrics(f"{args.metrics_host}:{args.metrics_port}")
    client = await connect(args)
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
    from ..devserver import start_dev_args

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
    from ..codec_server import codec_app, listen, serve_beside, ui_origins

    sock = listen(args.ip, args.codec_port)
    print(
        f"Encryption on (key {codec.keys.current_id}): the UI decodes through {endpoint}",
        flush=True,
    )
    app = codec_app(codec, cors_origins=ui_origins(host, args.ui_port))
    sys.exit(await serve_beside(argv, app, sock))


async def cmd_codec_server(args: argparse.Namespace) -> None:
    from ..codec_server import TOKEN_VARIABLE, codec_app, listen, serve, ui_origins

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


async def cmd_demo(args: argparse.Namespace) -> None:
    from ..demo import run_demo

    await run_demo(args.prompt)


async def cmd_mcp_serve(args: argparse.Namespace) -> None:
    from ..mcp_serve import listen, mcp_server, serve_http, serve_stdio

    sys.path.insert(0, os.getcwd())
    try:
        agents = load_agents(args.agents)
    except _LOAD_ERRORS as exc:
        detail = str(exc) if args.agents in str(exc) else f"cannot load {args.agents!r}: {exc}"
        raise CliError(detail) from exc
    by_name = {a.name: a for a in agents}
    if unknown := [n for n in args.agent or () if n not in by_name]:
        raise CliError(f"{args.agents} has no agent {unknown[0]!r} (it has: {', '.join(by_name)})")
    agents = [by_name[n] for n in args.agent] if args.agent else agents
    try:
        sock = listen(args.host, args.port) if args.transport == "http" else None
        client = await connect(args)
        server = mcp_server(agents, client)
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    await warn_without_worker(client, client.task_queue)
    where = "stdio" if sock is None else f"http://{args.host}:{args.port}/mcp"
    names = ", ".join(a.name for a in agents)
    print(f"MCP tools {names} on {where}, task queue {client.task_queue!r}", file=sys.stderr)
    if sock is None:
        await serve_stdio(server)  # stdout is the protocol's: everything else goes to stderr
    else:
        await serve_http(server, args.host, sock)


async def cmd_serve(args: argparse.Namespace) -> None:
    from ..serve import TOKEN_VARIABLE, create_app, listen, serve
    from ..serve.body_limit import max_body_bytes

    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    try:
        max_body = max_body_bytes()
        sock = listen(args.host, args.port)
    except ValueError as exc:  # a malformed DURABLE_AGENT_MAX_BODY_BYTES
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(exc.strerror or str(exc)) from exc
    client = await connect(args)
    await warn_without_worker(client, client.task_queue)
    print(
        f"durable-agent serve on http://{args.host}:{args.port} (docs at /docs), task queue"
        f" {client.task_queue!r};" + (" bearer token required" if token else " no token"),
        file=sys.stderr,
        flush=True,
    )
    await serve(create_app(client, token=token, max_body=max_body), sock)


def register(commands: Commands) -> None:
    p = commands.add("dev", cmd_dev, "start the Temporal dev server with our settings", False)
    p.add_argument("--db-filename", default=".durable-agent/temporal.db")
    p.add_argument("--in-memory", action="store_true", help="keep no state file")
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7233)
    p.add_argument("--ui-port", type=int, default=8233)
    p.add_argument(
        "--codec-port", type=int, default=8081, help="the UI's codec server, when encryption is on"
    )

    p = commands.add(
        "codec-server", cmd_codec_server, "decode payloads for the web UI and CLI", False
    )
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

    p = commands.add(
        "keygen", cmd_keygen, "print a new encryption key entry (kid:base64key)", False
    )
    p.add_argument("--id", default=f"k{datetime.now(UTC):%Y%m%d}", help="key id (default: kDATE)")

    _register_worker(commands)

    p = commands.add(
        "demo", cmd_demo, "embedded server, worker and an agent run, end to end", False
    )
    p.add_argument("--prompt", default="My order A-1001 arrived broken. Can I get a refund?")

    p = commands.add("mcp-serve", cmd_mcp_serve, "offer agents as MCP tools (stdio or HTTP)")
    p.add_argument("agents", metavar="pkg.module:attr", help="the agents, as for `worker`")
    p.add_argument("--agent", action="append", help="offer only this agent (repeatable)")
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="for http (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="for http: streamable HTTP at /mcp")

    p = commands.add(
        "serve", cmd_serve, "runs over HTTP, with their live streams as Server-Sent Events"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--token", help="require Authorization: Bearer TOKEN (default: DURABLE_AGENT_SERVE_TOKEN)"
    )


def _register_worker(commands: Commands) -> None:
    p = commands.add("worker", cmd_worker, "serve agents from an import path")
    p.add_argument("--agents", action="append", required=True, metavar="pkg.module:attr")
    p.add_argument(
        "--graceful-timeout",
        type=seconds,
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
