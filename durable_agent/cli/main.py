"""The entry point: the parser every group adds its verbs to, and `main`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from .. import telemetry
from . import answers, runs, servers
from ._common import Commands
from .errors import error_line

__all__ = ["build_parser", "main"]


DESCRIPTION = (
    "`durable-agent`: serve, start and drive agent runs. Connection settings come from"
    " Temporal's\nown environment configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,"
    " TEMPORAL_API_KEY, TLS,\nprofiles), exactly as the `temporal` CLI reads them; flags override."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="durable-agent", description=DESCRIPTION)
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (before the command)"
    )
    commands = Commands(parser.add_subparsers(dest="command", required=True))
    servers.register(commands)
    runs.register(commands)
    answers.register(commands)
    return parser


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
