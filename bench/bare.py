"""The obvious hand-written Temporal loop: one activity per model call, taking the whole
conversation, and one per tool call. What most teams write first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from .fake import TOOL_NAME, tool_output, wants_tool


@activity.defn(name="bare_model")
async def bare_model(conversation: list[dict[str, Any]], turns: int) -> dict[str, Any]:
    turn = sum(1 for m in conversation if m["role"] == "assistant")
    if wants_tool(turn, turns):
        return {"role": "assistant", "tool_call": {"id": f"c{turn}", "name": TOOL_NAME}}
    return {"role": "assistant", "content": "done"}


@activity.defn(name="bare_tool")
async def bare_tool(size: int) -> str:
    return tool_output(size)


@workflow.defn(name="BareLoop")
class BareLoop:
    @workflow.run
    async def run(self, turns: int, size: int) -> int:
        conversation: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
        timeout = timedelta(seconds=30)
        while True:
            reply = await workflow.execute_activity(
                bare_model, args=[conversation, turns], start_to_close_timeout=timeout
            )
            conversation.append(reply)
            if "tool_call" not in reply:
                return len(conversation)
            result = await workflow.execute_activity(
                bare_tool, size, start_to_close_timeout=timeout
            )
            conversation.append({"role": "tool", "id": reply["tool_call"]["id"], "content": result})
