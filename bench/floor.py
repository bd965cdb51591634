"""The same loop in plain asyncio: what the turns cost with no durability at all."""

from __future__ import annotations

import asyncio
from typing import Any

from .fake import TOOL_NAME, tool_output, wants_tool


async def _model(conversation: list[dict[str, Any]], turns: int) -> dict[str, Any]:
    await asyncio.sleep(0)
    turn = sum(1 for m in conversation if m["role"] == "assistant")
    if wants_tool(turn, turns):
        return {"role": "assistant", "tool_call": {"id": f"c{turn}", "name": TOOL_NAME}}
    return {"role": "assistant", "content": "done"}


async def _tool(size: int) -> str:
    await asyncio.sleep(0)
    return tool_output(size)


async def run(turns: int, size: int) -> int:
    conversation: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    while True:
        reply = await _model(conversation, turns)
        conversation.append(reply)
        if "tool_call" not in reply:
            return len(conversation)
        result = await _tool(size)
        conversation.append({"role": "tool", "id": reply["tool_call"]["id"], "content": result})
