"""Hook activities: one activity type per hook (`hook.<name>`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from durable_agent._hooks import Hook
from durable_agent.wire import HookContext, HookInvocation, HookResult

from .heartbeat import heartbeating
from .transcripts import TranscriptCache


def hook_activity(hook: Hook, transcripts: TranscriptCache) -> Callable[[HookInvocation], Any]:
    """The hook reads the conversation from the model activity's cache (or the workflow)."""

    async def run_hook(invocation: HookInvocation) -> HookResult:
        async with heartbeating():
            messages = invocation.messages
            if messages is None:
                messages = await transcripts.prefix(invocation.transcript)
            context = HookContext(
                agent=invocation.agent,
                turn=invocation.turn,
                workflow_id=invocation.transcript.workflow_id,
                messages=messages,
            )
            return await hook(context)

    return activity.defn(name=hook.activity_name)(run_hook)
