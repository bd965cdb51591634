"""Heartbeats for a running call, so a dead worker is noticed in seconds, not at the call's
start-to-close timeout, and a cancelled run's cancellation reaches the call.

The workflow decides: the activity heartbeats when it was scheduled with a heartbeat timeout
(`activity.info().heartbeat_timeout`), and not at all as a local activity or when the tool, hook
or agent turned heartbeats off (`heartbeat_timeout=None`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio import activity

BEATS_PER_TIMEOUT = 5
"""Beat every fifth of the heartbeat timeout (0.8 s for the default 4 s). The SDK sends the first
heartbeat at once and then at most one per ~80% of the timeout, so beating more often costs no
RPC; the first beat, one fifth in, is what a call shorter than that never pays."""


def beat_interval(timeout: timedelta) -> float:
    """Seconds between two heartbeats, and before the first."""
    return timeout.total_seconds() / BEATS_PER_TIMEOUT


@asynccontextmanager
async def heartbeating(*details: Any) -> AsyncIterator[None]:
    """Heartbeat from a background task while the body runs, if the call has a heartbeat timeout.

    The task is started inside the activity, so it inherits the activity's context. It sleeps
    first: a call that ends within one interval makes no heartbeat call at all. Each beat
    carries `details`: a heartbeat replaces the details the last one left, which the next
    attempt reads when this worker dies.
    """
    info = activity.info()
    timeout = info.heartbeat_timeout
    if info.is_local or not timeout:
        yield
        return
    beater = asyncio.create_task(_beat(beat_interval(timeout), details), name="heartbeat")
    try:
        yield
    finally:
        beater.cancel()


async def _beat(interval: float, details: tuple[Any, ...]) -> None:
    while True:
        await asyncio.sleep(interval)
        activity.heartbeat(*details)
