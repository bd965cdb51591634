"""`python -m faults --trace DIR`: every worker process writes SDK core's account of its
workflow tasks to `DIR/core-<pid>.log` (debug for workflows: each task's history range and
update messages, each activation's jobs, each completion's commands, evictions). That account
is what found the Temporal bug behind storm (d)'s stranded run (README, 'Fault storms'); the
storms' own figures cannot show which events a worker skipped."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig

TRACE_ENV = "DURABLE_AGENT_FAULTS_TRACE"
"""Set (to a directory) only in the workers' environment, so the storm's own process logs as
before."""

CORE_FILTER = "warn,temporalio_sdk_core=info,temporalio_sdk_core::worker::workflow=debug"


def install_if_asked() -> None:
    """Make the process's default SDK runtime forward core's log to the trace file. Call it
    before the first client connects: `durable-agent worker` loads `--agents` first."""
    directory = os.environ.get(TRACE_ENV)
    if not directory:
        return
    logger = logging.getLogger("faults.core")
    handler = logging.FileHandler(Path(directory) / f"core-{os.getpid()}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # not into the worker's stderr
    forwarding = LogForwardingConfig(logger=logger)
    logging_config = LoggingConfig(filter=CORE_FILTER, forwarding=forwarding)
    runtime = Runtime(telemetry=TelemetryConfig(logging=logging_config))
    Runtime.set_default(runtime, error_if_already_set=False)
