"""The live buses the live bench measures side by side (issue 20), each as a user sets it up:
the embedded default (nothing to start) and Redis (Debian's `redis-server` as a process on a
loopback port, as the tests start it). `DURABLE_AGENT_LIVE_URL` is set in this process, so the
observers read it, and inherited by the worker and `serve` processes the bench starts."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from durable_agent.live import LIVE_URL_VARIABLE

BUSES = ("embedded bus", "Redis bus")


@contextlib.contextmanager
def bus(name: str) -> Iterator[None]:
    """`DURABLE_AGENT_LIVE_URL` for `name` while the block runs (and its Redis, if any).
    Raises RuntimeError when Redis is not installed or does not start."""
    before = os.environ.pop(LIVE_URL_VARIABLE, None)
    try:
        if name == "Redis bus":
            with redis_server() as url:
                os.environ[LIVE_URL_VARIABLE] = url
                yield
        else:
            yield
    finally:
        os.environ.pop(LIVE_URL_VARIABLE, None)
        if before is not None:
            os.environ[LIVE_URL_VARIABLE] = before


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", workdir]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # bounded: 5 s
            if _pongs(port):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not answer PING in 5 s")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def _pongs(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
