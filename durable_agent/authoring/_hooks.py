"""Hooks that run after every model completion: inspect the conversation, inject messages
(research from another model, a nudge, a reminder) or ask the run to stop.

Each hook runs as an activity (`hook.<name>`), so it may do I/O and its outcome is part of the
history: replays see the same injections. Injected messages wait for the next safe point,
after every tool result of the current response.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, overload

from temporalio.common import RetryPolicy

from ..wire import HookContext, HookResult
from ._tool import FROM_AGENT, HeartbeatTimeout

HookFunction = Callable[[HookContext], Any]


@dataclass(eq=False)
class Hook:
    name: str
    fn: HookFunction
    local: bool = False
    timeout: timedelta = timedelta(minutes=2)
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(maximum_attempts=3))
    heartbeat_timeout: HeartbeatTimeout = FROM_AGENT
    """Presume the call's worker dead after this long without a heartbeat; `None`: never."""

    @property
    def activity_name(self) -> str:
        return f"hook.{self.name}"

    async def __call__(self, context: HookContext) -> HookResult:
        if inspect.iscoroutinefunction(self.fn):
            result = self.fn(context)
        else:
            # In a thread, as sync tools run: a blocking hook would stall the worker's event
            # loop, and with it the heartbeats of every call on that worker.
            result = await asyncio.to_thread(self.fn, context)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            return HookResult()
        if isinstance(result, HookResult):
            return result
        return HookResult(inject=list(result))


@overload
def hook(fn: HookFunction, /) -> Hook: ...
@overload
def hook(
    *,
    name: str | None = None,
    local: bool = False,
    timeout: timedelta = ...,
    heartbeat_timeout: HeartbeatTimeout = ...,
) -> Callable[[HookFunction], Hook]: ...
def hook(
    fn: HookFunction | None = None,
    /,
    *,
    name: str | None = None,
    local: bool = False,
    timeout: timedelta = timedelta(minutes=2),
    heartbeat_timeout: HeartbeatTimeout = FROM_AGENT,
) -> Hook | Callable[[HookFunction], Hook]:
    """Make a function `(HookContext) -> HookResult | list[Message] | None` a hook.

    `heartbeat_timeout` is as for `tool`: by default the agent's, `None` turns heartbeats off.
    """

    def wrap(f: HookFunction) -> Hook:
        return Hook(
            name=name or f.__name__,
            fn=f,
            local=local,
            timeout=timeout,
            heartbeat_timeout=heartbeat_timeout,
        )

    return wrap(fn) if fn is not None else wrap
