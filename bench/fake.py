"""The fake model and tool every variant shares: no delay, so only orchestration is measured.

A run is told its length and tool-output size in its prompt (`turns=N size=S`); the model asks
for one tool call per turn until the last turn, which answers with text.
"""

from __future__ import annotations

import re

TOOL_NAME = "fetch"


def prompt(turns: int, size: int) -> str:
    return f"turns={turns} size={size}"


def parse(text: str) -> tuple[int, int]:
    match = re.search(r"turns=(\d+) size=(\d+)", text)
    if match is None:
        raise ValueError(f"not a bench prompt: {text!r}")
    return int(match.group(1)), int(match.group(2))


def wants_tool(turn: int, turns: int) -> bool:
    """Turn numbers start at 0: turns 0..N-2 call the tool, turn N-1 answers."""
    return turn < turns - 1


def tool_output(size: int) -> str:
    return "x" * size
