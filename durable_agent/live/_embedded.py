"""The embedded bus: each worker keeps the deltas of the calls it runs and serves them over HTTP.

Nothing new to start: the worker process holds a small in-memory store and, from its first
streaming call on, answers `GET /v1/calls/<key>?since=<position>&wait=<seconds>` (a long poll)
on the address it announces in its Temporal worker identity (`live=http://host:port`). A reader
finds that identity where Temporal already shows it, in the run's pending model activity
(`describe`), so no registry and no extra server exist. It covers one machine (loopback, the
default) and a LAN where readers reach workers (`DURABLE_AGENT_LIVE_URL=http://0.0.0.0:PORT`
with `DURABLE_AGENT_LIVE_ADVERTISE=host`); it stops where readers cannot open a connection to
the worker (NAT, a Kubernetes pod without a route to it): use Redis there.

HTTP/1.1 by hand on asyncio streams: two routes, keep-alive, no dependency; `curl` reads it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._protocol import Batch, BusUnavailable, Entry, visible

MAX_ENTRIES = 10_000
"""Entries kept per call; older ones are dropped first. A 1,000-token reply streamed token by
token is 1,000 entries; the message holds the whole text anyway."""
KEEP_ENDED = 300.0
"""Seconds an ended call's stream is kept: a reader that saw its deltas drains the rest before
the message, and one resuming within minutes gets the same answer from any replica."""
KEEP_IDLE = 3600.0
"""Seconds a call nobody writes to is kept (its worker died mid-call)."""
MAX_WAIT = 30.0
"""Longest long poll the server holds."""
_SWEEP_EVERY = 10.0


@dataclass
class _Stream:
    entries: list[Entry] = field(default_factory=list)
    touched: float = field(default_factory=time.monotonic)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class Store:
    """The calls' streams in this process."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._swept = time.monotonic()
        self._created = asyncio.Event()
        """Set when a stream is created: a reader can find a call before its first write."""

    def append(self, key: str, entries: Sequence[Entry]) -> None:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
            self._created.set()
            self._created = asyncio.Event()
        last = stream.entries[-1].position if stream.entries else -1
        fresh = [e for e in entries if e.position > last]
        if not fresh:
            return
        stream.entries.extend(fresh)
        del stream.entries[:-MAX_ENTRIES]
        stream.touched = time.monotonic()
        stream.changed.set()
        stream.changed = asyncio.Event()
        self._sweep()

    async def read(self, key: str, since: int, wait: float) -> Batch:
        deadline = time.monotonic() + min(wait, MAX_WAIT)
        while True:
            stream = self._streams.get(key)
            left = deadline - time.monotonic()
            if stream is None:
                if left <= 0:
                    return Batch(known=False)
                changed = self._created
            else:
                changed = stream.changed
                batch = visible([e for e in stream.entries if e.position >= since])
                if batch.entries or batch.ended or left <= 0:
                    return batch
            with contextlib.suppress(TimeoutError):  # then: what there is, or not known
                await asyncio.wait_for(changed.wait(), left)

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        for key, stream in list(self._streams.items()):
            keep = KEEP_ENDED if stream.entries and stream.entries[-1].is_end else KEEP_IDLE
            if now - stream.touched > keep:
                del self._streams[key]


class EmbeddedServer:
    """Serves a `Store` over HTTP on a bound socket, from the first `ensure_serving` on, on the
    running loop (a later loop, e.g. a second `asyncio.run`, serves the same socket again)."""

    def __init__(self, store: Store, sock: socket.socket) -> None:
        self.store = store
        self._socket = sock
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def ensure_serving(self) -> None:
        loop = asyncio.get_running_loop()
        if self._server is None or self._loop is not loop:
            self._server = await asyncio.start_server(self._connection, sock=self._socket.dup())
            self._loop = loop

    async def close(self) -> None:
        if self._server is not None and self._loop is asyncio.get_running_loop():
            self._server.close()
            await self._server.wait_closed()
        self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readline()
                if not request:
                    return
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: nothing in them changes the answer
                status, body = await self._answer(request.decode("latin-1"))
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _answer(self, request: str) -> tuple[str, bytes]:
        method, _, rest = request.partition(" ")
        target = rest.rsplit(" ", 1)[0]
        url = urllib.parse.urlsplit(target)
        prefix = "/v1/calls/"
        if method != "GET" or not url.path.startswith(prefix):
            return "404 Not Found", b'{"error": "GET /v1/calls/<key>?since=&wait="}'
        query = urllib.parse.parse_qs(url.query)
        try:
            since = int(query.get("since", ["0"])[0])
            wait = max(0.0, float(query.get("wait", ["0"])[0]))
        except ValueError:
            return "400 Bad Request", b'{"error": "since is an integer, wait a number"}'
        key = urllib.parse.unquote(url.path[len(prefix) :])
        batch = await self.store.read(key, since, wait)
        body = {
            "entries": [[e.position, base64.b64encode(e.data).decode()] for e in batch.entries],
            "ended": batch.ended,
            "known": batch.known,
        }
        return "200 OK", json.dumps(body).encode()


class EmbeddedReader:
    """Reads one worker's embedded bus: one keep-alive connection, one request at a time."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        parsed = urllib.parse.urlsplit(address)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"not an embedded bus address: {address!r}")
        self.address = address
        self._host, self._port = parsed.hostname, parsed.port
        self._timeout = timeout
        """Seconds to connect, and to wait for an answer beyond the long poll's own wait."""
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def read(self, key: str, since: int, wait: float) -> Batch:
        path = f"/v1/calls/{urllib.parse.quote(key, safe='')}?since={since}&wait={wait:.3f}"
        async with self._lock:
            try:
                body = await asyncio.wait_for(self._get(path), wait + self._timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                await self.close()
                raise BusUnavailable(f"the worker's live bus at {self.address}: {exc}") from None
        try:
            answer = json.loads(body)
            entries = [Entry(int(p), base64.b64decode(d)) for p, d in answer["entries"]]
            return Batch(entries, ended=bool(answer["ended"]), known=bool(answer["known"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BusUnavailable(f"a malformed answer from {self.address}: {exc}") from None

    async def _get(self, path: str) -> bytes:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        if not status.startswith(b"HTTP/1.1 200"):
            raise ValueError(f"answered {status.decode('latin-1').strip() or 'nothing'}")
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return await reader.readexactly(length)

    async def close(self) -> None:
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            writer.close()
