"""Hooks that run after every model completion: inspect the conversation, inject messages
(research from another model, a nudge, a reminder) or ask the run to stop.

Each hook runs as an activity (`hook.<name>`), so it may do I/O and its outcome is part of the
history: replays see the same injections. Injected messages wait for the next safe point,
after every tool result of the current response.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, overload

from temporalio.common import RetryPolicy

from .wire import HookContext, HookResult

HookFunction = Callable[[HookContext], Any]


@dataclass(eq=False)
class Hook:
    name: str
    fn: HookFunction
    local: bool = False
    timeout: timedelta = timedelta(minutes=2)
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(maximum_attempts=3))

    @property
    def activity_name(self) -> str:
        return f"hook.{self.name}"

    async def __call__(self, context: HookContext) -> HookResult:
        result = self.fn(context)
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
    *, name: str | None = None, local: bool = False, timeout: timedelta = ...
) -> Callable[[HookFunction], Hook]: ...
def hook(
    fn: HookFunction | None = None,
    /,
    *,
    name: str | None = None,
    local: bool = False,
    timeout: timedelta = timedelta(minutes=2),
) -> Hook | Callable[[HookFunction], Hook]:
    """Make a function `(HookContext) -> HookResult | list[Message] | None` a hook."""

    def wrap(f: HookFunction) -> Hook:
        return Hook(name=name or f.__name__, fn=f, local=local, timeout=timeout)

    return wrap(fn) if fn is not None else wrap
