"""Worker and CLI subprocesses for the end-to-end tests: what a user runs, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from durable_agent.devserver import start_dev_args

from .conftest import eventually

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def start_worker(
    address: str,
    task_queue: str,
    log_file: Path,
    agents: str = "tests.e2e_agents:agents",
    cwd: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """`durable-agent worker` as a user starts it, from `cwd`; its stderr goes to `log_file`'s
    sibling `<name>.stderr`."""
    env = {**os.environ, "E2E_LOG": str(log_file)}
    with log_file.with_suffix(".stderr").open("ab") as stderr:
        return subprocess.Popen(
            [
                *(str(BIN / "durable-agent"), "worker", "--agents", agents),
                *("--address", address, "--task-queue", task_queue),
            ],
            cwd=cwd,
            env=env,
            stderr=stderr,
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    process.send_signal(sig)
    process.wait(timeout=30)


def temporal(address: str, *args: str) -> Any:
    """Run the real `temporal` CLI and parse its JSON output."""
    out = subprocess.run(
        [str(BIN / "temporal"), *args, "--address", address, "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(out.stdout) if out.stdout.strip() else None


def log_lines(log_file: Path) -> list[dict[str, str]]:
    if not log_file.exists():
        return []
    return [json.loads(line) for line in log_file.read_text().splitlines() if line]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevServer:
    """`durable-agent`'s dev server settings in a process of its own, restartable on its state
    file, to prove runs survive a server restart."""

    def __init__(self, db_file: Path) -> None:
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self.argv = [*start_dev_args(db_file, port, free_port(), "127.0.0.1"), "--headless"]
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: ASYNC220 - a background server, not awaited
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        host, port = self.address.split(":")

        async def accepting() -> bool:
            try:
                _, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                return False
            writer.close()
            return True

        async def healthy() -> bool:
            # The port accepts before the frontend serves: on a busy machine a client connecting
            # then was refused ("Frontend is not healthy yet").
            try:
                client = await asyncio.wait_for(Client.connect(self.address), 10)
                return await client.service_client.check_health()
            except (RuntimeError, RPCError, TimeoutError):
                return False

        await eventually(accepting, f"the dev server to accept connections on {self.address}")
        await eventually(healthy, f"the dev server on {self.address} to answer as healthy")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
