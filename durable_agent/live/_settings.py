"""Which bus a process uses, from one setting shared by worker, client, CLI and `serve`.

`DURABLE_AGENT_LIVE_URL`:
- unset (the default): the embedded bus on loopback, a free port (one machine);
- `http://HOST:PORT`: the embedded bus bound there (`0.0.0.0` for a LAN), announced as
  `DURABLE_AGENT_LIVE_ADVERTISE` (a name or address readers reach) or HOST;
- `redis://...` / `rediss://...`: Redis Streams;
- `off`: no live deltas (replies land whole, as with `stream=False` models).

A worker announces its bus in its Temporal identity (`... live=<where>`); a reader follows what
the call's worker announced, so a reader needs the setting only to reach Redis.
"""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._embedded import EmbeddedReader, EmbeddedServer, Store
from ._protocol import Batch, Entry, Publisher, Reader

if TYPE_CHECKING:
    from ._redis import RedisBus

LIVE_URL_VARIABLE = "DURABLE_AGENT_LIVE_URL"
ADVERTISE_VARIABLE = "DURABLE_AGENT_LIVE_ADVERTISE"
_MARK = " live="
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class EmbeddedPublisher:
    """The worker's side of the embedded bus. The socket is bound when the worker is built,
    so its identity can name the address before any call runs; it is served from the first
    publish on, on the loop that runs the activities."""

    def __init__(self, host: str, port: int, advertise: str | None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(128)
        self._socket.setblocking(False)
        bound_port = int(self._socket.getsockname()[1])
        shown = advertise or (host if host not in ("", "0.0.0.0", "::") else socket.gethostname())
        self.address = f"http://{shown}:{bound_port}"
        self.store = Store()
        self._server = EmbeddedServer(self.store, self._socket)

    def announce(self) -> str:
        return self.address

    async def publish(self, key: str, entries: Sequence[Entry]) -> None:
        await self._server.ensure_serving()
        self.store.append(key, entries)

    async def close(self) -> None:
        await self._server.close()


def _parse(environ: Mapping[str, str] | None) -> tuple[str, str]:
    env = os.environ if environ is None else environ
    return env.get(LIVE_URL_VARIABLE, "").strip(), env.get(ADVERTISE_VARIABLE, "").strip()


_publishers: dict[tuple[str, str], Publisher | None] = {}


def publisher(environ: Mapping[str, str] | None = None) -> Publisher | None:
    """This process's publishing side (one per setting: workers in one process share it);
    None when live deltas are off. Raises ValueError for a malformed setting."""
    url, advertise = _parse(environ)
    if (url, advertise) not in _publishers:
        _publishers[url, advertise] = _make_publisher(url, advertise)
    return _publishers[url, advertise]


def _make_publisher(url: str, advertise: str) -> Publisher | None:
    if url.lower() in ("off", "none"):
        return None
    if url.startswith(_REDIS_SCHEMES):
        return _redis_bus(url)
    if not url:
        return EmbeddedPublisher("127.0.0.1", 0, advertise or None)
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or not parsed.hostname:
        raise ValueError(
            f"{LIVE_URL_VARIABLE}={url!r}: expected redis://..., http://HOST:PORT or off"
        )
    return EmbeddedPublisher(parsed.hostname, parsed.port or 0, advertise or None)


def identity(base: str, environ: Mapping[str, str] | None = None) -> str:
    """A worker identity that announces where its calls' deltas are read."""
    bus = publisher(environ)
    return base if bus is None else f"{base.split(_MARK)[0]}{_MARK}{bus.announce()}"


def announced(worker_identity: str) -> str | None:
    """What a worker's identity announces (`http://...`, `redis`), or None."""
    _, mark, where = worker_identity.rpartition(_MARK)
    return where.strip() or None if mark else None


def reader_for(where: str, environ: Mapping[str, str] | None = None) -> Reader | str:
    """A reader of the bus a worker announced, or why there is none."""
    if where.startswith("http://"):
        return EmbeddedReader(where)
    if where == "redis":
        url, _ = _parse(environ)
        if url.startswith(_REDIS_SCHEMES):
            return _RedisReader(_redis_bus(url))
        return f"the worker publishes live text to Redis: set {LIVE_URL_VARIABLE} here too"
    return f"unknown live bus {where!r}"


def _redis_bus(url: str) -> RedisBus:
    """Imported only once a Redis URL is set: `redis.asyncio` took 71-95 ms of every worker's,
    CLI command's and client's start (`python -X importtime`, 2026-12-06), for a bus most
    users never configure."""
    from ._redis import RedisBus

    return RedisBus(url)


class _RedisReader:
    def __init__(self, bus: RedisBus) -> None:
        self._bus = bus

    async def read(self, key: str, since: int, wait: float) -> Batch:
        return await self._bus.read(key, since, wait)

    async def close(self) -> None:
        await self._bus.close()


async def close_publishers() -> None:
    """Close what the publishers hold on the running loop (tests, a stopping worker)."""
    for bus in _publishers.values():
        closer = getattr(bus, "close", None)
        if closer is not None:
            await closer()
    await asyncio.sleep(0)
