"""Tools more than one test file uses, and the records every test tool writes.

Tools run in the test's own event loop (the worker is in-process), so a test reads `RUNS` to see
which bodies ran and sets an event in `RELEASE` to let a held tool body finish. conftest clears
both before every test.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from durable_agent import external_tool

RUNS: defaultdict[str, list[str]] = defaultdict(list)
"""Tool name -> what each run of its body recorded (an argument or its tool_call_id)."""

RELEASE: dict[str, asyncio.Event] = {}
"""Events a test sets to let a held tool body finish."""


async def held(key: str, seconds: float = 10) -> None:
    """Wait until the test sets `RELEASE[key]` (bounded, so a test that forgets fails)."""
    await asyncio.wait_for(RELEASE[key].wait(), seconds)


@external_tool()
def ask_manager(question: str) -> str:
    """Ask a manager; the answer is signalled in.

    Args:
        question: The question.
    """
    raise AssertionError("an external tool's body never runs")


@external_tool()
def wait_for_it() -> str:
    """Wait for it: the answer is signalled in."""
    raise AssertionError("an external tool's body never runs")
