"""Step 2's second half: the agent's hooks, after each model call.

Hooks see the conversation by reference (`Outbox`) and may inject messages, which wait for the
next safe point, or ask the run to stop. A hook that fails is recorded and otherwise ignored.
"""

from __future__ import annotations

import asyncio
from functools import partial

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models and the agent definitions the worker registered.
    from durable_agent.authoring._agent import Agent
    from durable_agent.authoring._hooks import Hook
    from durable_agent.wire import HookInvocation, HookResult

from .conversation import Conversation
from .failures import CALL_FAILED, cause_text, reraise_cancellation
from .outbox import Outbox, whole_on_miss
from .outcomes import Stop


class Hooks:
    def __init__(self, conversation: Conversation, outbox: Outbox) -> None:
        self._conversation = conversation
        self._outbox = outbox
        self.stop: Stop | None = None
        """Set by the first hook that asked the run to stop; it stops at the next safe point."""

    async def run(self, agent: Agent) -> None:
        hooks = agent.hook_list
        if not hooks:
            return
        results = await asyncio.gather(*(self._run_one(agent, h) for h in hooks))
        for hook, result in zip(hooks, results, strict=True):
            for message in result.inject:
                self._conversation.receive(message)
            if result.stop and self.stop is None:
                self.stop = Stop(result.reason or f"hook {hook.name} asked to stop")
            self._conversation.event(
                "agent", "hook_ran", hook=hook.name, injected=len(result.inject), stop=result.stop
            )

    async def _run_one(self, agent: Agent, hook: Hook) -> HookResult:
        execute = (
            workflow.execute_local_activity
            if hook.local
            else partial(workflow.execute_activity, heartbeat_timeout=agent.heartbeat_for(hook))
        )
        invocation = self._outbox.hook_invocation(hook, agent.name, self._conversation.turns)

        async def call(payload: HookInvocation) -> HookResult:
            result: HookResult = await execute(
                hook.activity_name,
                payload,
                result_type=HookResult,
                start_to_close_timeout=hook.timeout,
                retry_policy=hook.retry,
            )
            return result

        def whole() -> HookInvocation:
            return Outbox.whole_hook(invocation, self._conversation.prompt())

        try:
            return await whole_on_miss(call, invocation, whole)
        except CALL_FAILED as exc:
            reraise_cancellation(exc)
            self._conversation.event("agent", "hook_failed", hook=hook.name, error=cause_text(exc))
            return HookResult()
