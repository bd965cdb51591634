"""The Redis bus, for fleets: every worker writes, every client and `serve` replica reads.

One Redis stream per model call (`durable-agent:live:<key>`), its entry ids the deltas'
positions (`<position>-0`), so a reader resumes from its cursor with `XREAD` from that id and
blocks there for the next entry; an earlier attempt still flushing after its retry began is
refused by Redis itself (ids must grow). Length is capped with `MAXLEN ~` and every write
renews the key's expiry, shorter once the call has ended. Selected with
`DURABLE_AGENT_LIVE_URL=redis://host:port/db` (or `rediss://`), the same in worker, client,
CLI and `serve`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from ._embedded import KEEP_ENDED, KEEP_IDLE, MAX_ENTRIES
from ._protocol import Batch, BusUnavailable, Entry, visible

PREFIX = "durable-agent:live:"
CONNECT_TIMEOUT = 2.0
"""Seconds to reach Redis: a bus that went away must not hold a reader (or a call's last
flush) for long; the durable record does not need it."""
WRITE_TIMEOUT = 2.0
MAX_READ = 1000
"""Entries one read returns at most (a reader that is behind reads again at once)."""


class RedisBus:
    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, aioredis.Redis]] = {}

    def announce(self) -> str:
        return "redis"  # never the URL: it may hold a password

    def _client(self) -> aioredis.Redis:
        """One client (a connection pool) per event loop: redis' connections belong to one."""
        loop = asyncio.get_running_loop()
        held = self._clients.get(id(loop))
        if held is None or held[0] is not loop:
            client = aioredis.Redis.from_url(
                self.url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                # Reads block up to their own wait; `read` bounds them from outside.
                socket_timeout=None,
                retry=Retry(NoBackoff(), 0),
            )
            held = self._clients[id(loop)] = (loop, client)
        return held[1]

    async def publish(self, key: str, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        name = PREFIX + key
        pipe = self._client().pipeline(transaction=True)  # readers get whole batches
        for entry in entries:
            pipe.xadd(
                name,
                {"d": entry.data},
                id=f"{entry.position}-0",
                maxlen=MAX_ENTRIES,
                approximate=True,
            )
        pipe.expire(name, int(KEEP_ENDED if entries[-1].is_end else KEEP_IDLE))
        try:
            results = await asyncio.wait_for(pipe.execute(raise_on_error=False), WRITE_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            raise BusUnavailable(f"redis: {exc or type(exc).__name__}") from None
        for result in results:
            # "ID specified in XADD is equal or smaller": a superseded attempt, refused.
            if isinstance(result, ResponseError) and "equal or smaller" not in str(result):
                raise BusUnavailable(f"redis: {result}")

    async def read(self, key: str, since: int, wait: float) -> Batch:
        start = f"{max(since - 1, 0)}-0"  # XREAD returns the entries after this id
        block = int(wait * 1000) or None  # BLOCK 0 would wait for ever
        try:
            answer: Any = await asyncio.wait_for(
                self._client().xread({PREFIX + key: start}, count=MAX_READ, block=block),
                wait + CONNECT_TIMEOUT + WRITE_TIMEOUT,
            )
        except (RedisError, OSError, TimeoutError) as exc:
            raise BusUnavailable(f"redis: {exc or type(exc).__name__}") from None
        entries: list[Entry] = []
        for _name, items in answer or ():
            for entry_id, fields in items:
                raw_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                entries.append(Entry(int(raw_id.partition("-")[0]), bytes(fields.get(b"d", b""))))
        return visible(entries)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for loop, client in clients:
            if loop is asyncio.get_running_loop():
                await client.aclose()
