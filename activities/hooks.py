"""Hook activities: one activity type per hook (`hook.<name>`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from durable_agent.authoring._hooks import Hook
from durable_agent.wire import HookContext, HookInvocation, HookResult, UserMessage

from .attachments import offload_messages
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
            result = await hook(context)
            if any(isinstance(m, UserMessage) and m.attachments for m in result.inject):
                # Injected images and files: large bytes to payload storage, as a client does.
                converter = activity.client().data_converter
                result.inject = await offload_messages(converter, result.inject)
            return result

    return activity.defn(name=hook.activity_name)(run_hook)
