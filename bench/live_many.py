"""Many runs streaming at once on one worker (issue 20): every reply lands whole, every
reader's deltas add up to its message, and what the worker and the server spend per 1,000
streamed tokens. Each run has one `AgentClient.events` reader in the bench's process."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from durable_agent import AssistantMessage, LiveEvent
from durable_agent.client import AgentClient

if TYPE_CHECKING:  # bench.live imports this module
    from .live import CpuMeter


@dataclass
class Many:
    runs: int
    tokens: int
    """Tokens each run streams."""
    whole: int = 0
    """Replies that landed whole."""
    added_up: int = 0
    """Readers whose text deltas add up to the run's message."""
    none: int = 0
    """Readers that saw no delta (they found the call only after it ended): shown whole."""
    told: int = 0
    """Readers told live text was unavailable (an `unavailable` delta), the message whole."""
    short: int = 0
    """Readers whose deltas stopped short of the message with nothing said: a fault."""
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per 1,000 streamed tokens, by process."""
    errors: list[str] = field(default_factory=list)


async def measure_many(
    client: AgentClient, agent: str, prompt: str, expected: str, many: Many, cpu: CpuMeter
) -> Many:
    """`many.runs` runs of `agent` started at once, each read by one reader to its end."""
    used, started = cpu.read(), time.monotonic()
    ids = [f"bench-live-many-{uuid.uuid4().hex[:8]}" for _ in range(many.runs)]
    handles = await asyncio.gather(*(client.start(agent, prompt, workflow_id=i) for i in ids))
    readers = [asyncio.ensure_future(_read(client, h.id)) for h in handles]
    results = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
    seen = await asyncio.gather(*readers, return_exceptions=True)
    many.wall = time.monotonic() - started
    spent = cpu.since(used, cpu.read())
    streamed = many.runs * many.tokens
    many.cpu = {name: seconds * 1000 / streamed for name, seconds in spent.items()}
    for result in results:
        if isinstance(result, BaseException):
            many.errors.append(f"{type(result).__name__}: {result}")
        elif result.final_text == expected:
            many.whole += 1
    for events in seen:
        if isinstance(events, BaseException):
            many.errors.append(f"reader {type(events).__name__}: {events}")
            continue
        text = "".join(e.delta.text for e in events if e.delta and e.delta.kind == "text")
        message = next(
            (e.item.content for e in events if isinstance(e.item, AssistantMessage)), None
        )
        if message is not None and text == message:
            many.added_up += 1
        elif any(e.delta and e.delta.kind == "unavailable" for e in events):
            many.told += 1
        elif not text:
            many.none += 1
        else:
            many.short += 1
    return many


async def _read(client: AgentClient, workflow_id: str) -> list[LiveEvent]:
    return [e async for e in client.events(workflow_id)]
