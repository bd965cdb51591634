"""Guardrails (README "Guardrails"): checks on what goes into a run and what comes out.

- An *input* guardrail sees the user's new messages before the model answers them; an
  *output* guardrail sees the final answer. Either may trip: the run ends with outcome and
  state `guardrail_tripped` and the guardrail's reason.
- A *tool* guardrail sees each tool call before it runs and may refuse it: the model gets an
  error result that says why, and the run goes on.

A guardrail is a plain function or an agent; either way it runs as an activity
(`guardrail.<name>`), so its verdict is recorded and a replay reads it back.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.common import RetryPolicy

from ..wire import GuardrailCall, GuardrailKind, GuardrailVerdict, guardrail_activity

if TYPE_CHECKING:
    from ._agent import Agent

GuardrailFunction = Callable[..., Any]
"""Input and output guardrails: `(text: str) -> verdict`; tool guardrails:
`(tool: str, arguments: dict) -> verdict`. A verdict is None or False (pass), True (trip),
a string (trip, with that reason) or a `GuardrailVerdict`; sync or async."""


@dataclass(eq=False)
class Guardrail:
    name: str
    kind: GuardrailKind
    fn: GuardrailFunction | None = None
    agent: Agent | None = None
    """An agent as the guardrail: asked once with the text (or the call), it answers a
    `GuardrailVerdict` (its `output_type`)."""
    local: bool | None = None
    """Run as a local activity, inside the workflow task: a function guardrail by default (a
    check of a few microseconds costs no round trip to the server: bench/guards.py measured a
    tool guardrail as a regular activity at +40% a turn), an agent guardrail never (a model
    call is too long for a workflow task). Left unset, a function tool guardrail is checked
    inside the tool's own activity when the call runs one (no command at all: a local
    activity per call measured 1.14x a plain turn); `True` or `False` keeps an activity of its
    own for every call."""
    timeout: timedelta = timedelta(minutes=1)
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(maximum_attempts=3))

    @property
    def runs_locally(self) -> bool:
        return self.agent is None if self.local is None else self.local

    @property
    def in_tool_activity(self) -> bool:
        """A function tool guardrail left to choose: checked inside the tool's activity."""
        return self.kind == "tool" and self.agent is None and self.local is None

    @property
    def activity_name(self) -> str:
        return guardrail_activity(self.name)

    async def check(self, call: GuardrailCall) -> GuardrailVerdict:
        """The function's verdict (an agent's is asked by the activity, which has the models)."""
        assert self.fn is not None, "an agent guardrail is asked by its activity"
        if call.kind == "tool":
            arguments = _arguments(call.arguments)
            args: tuple[Any, ...] = (call.tool or "", arguments)
        else:
            args = (call.text,)
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(*args)
        else:  # in a thread, as sync tools and hooks run: never block the worker's loop
            result = await asyncio.to_thread(self.fn, *args)
        return verdict(self.name, result)


def verdict(name: str, result: Any) -> GuardrailVerdict:
    if isinstance(result, GuardrailVerdict):
        return result
    if result is None or result is False:
        return GuardrailVerdict(tripped=False)
    if result is True:
        return GuardrailVerdict(tripped=True, reason=f"guardrail {name} tripped")
    if isinstance(result, str):
        return GuardrailVerdict(tripped=True, reason=result)
    raise TypeError(f"guardrail {name} returned {type(result).__name__}, not a verdict")


def _arguments(raw: str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _make(kind: GuardrailKind, fn: Any, name: str | None, local: bool | None) -> Guardrail:
    from ._agent import Agent  # the agent module imports this one

    if isinstance(fn, Agent):
        if fn.output_type is not GuardrailVerdict:
            raise ValueError(f"agent {fn.name!r} as a guardrail needs output_type=GuardrailVerdict")
        return Guardrail(name=name or fn.name, kind=kind, agent=fn, local=local)
    if not callable(fn):
        raise TypeError(f"a guardrail is a function or an Agent, not {type(fn).__name__}")
    raw = name or str(getattr(fn, "__name__", "guardrail"))
    return Guardrail(name=re.sub(r"[^A-Za-z0-9_.-]", "_", raw), kind=kind, fn=fn, local=local)


def input_guardrail(
    fn: GuardrailFunction | Agent, /, *, name: str | None = None, local: bool | None = None
) -> Guardrail:
    """Checks the user's new messages before the model answers them; may end the run."""
    return _make("input", fn, name, local)


def output_guardrail(
    fn: GuardrailFunction | Agent, /, *, name: str | None = None, local: bool | None = None
) -> Guardrail:
    """Checks the final answer; may end the run."""
    return _make("output", fn, name, local)


def tool_guardrail(
    fn: GuardrailFunction | Agent, /, *, name: str | None = None, local: bool | None = None
) -> Guardrail:
    """Checks each tool call before it runs; may refuse it (the model sees why)."""
    return _make("tool", fn, name, local)


__all__ = [
    "Guardrail",
    "GuardrailVerdict",
    "input_guardrail",
    "output_guardrail",
    "tool_guardrail",
    "verdict",
]
