"""Keeps each model call inside the model's context: plans the window (`Window`), folds what
falls out into a summary with the `model.summarize` activity (recorded, bounded, replay-safe),
records each step as a `context_compacted` event (which continue-as-new and snapshots carry,
so the window survives them), and answers a provider's "too long" refusal with one compaction
and one retry instead of a failed run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # Pure data models and the agent definitions the worker registered.
    from durable_agent.authoring._agent import Agent
    from durable_agent.wire import (
        CONTEXT_TOO_LONG,
        SUMMARY_ACTIVITY,
        SUMMARY_INSTRUCTIONS,
        WINDOW_MISS,
        ContextPolicy,
        ContextWindow,
        Message,
        ModelRequest,
        ModelResponse,
        ModelSettings,
        SummaryRequest,
        SummaryResponse,
        estimate_tokens,
    )

from .conversation import Conversation
from .failures import CALL_FAILED
from .outbox import Outbox
from .window import COMPACTED, Compaction, Limits, Window, limits

CONTEXT_WINDOW = "context-window"
"""Patch id: runs from before context windows never compact (their histories hold no summary
calls), so they replay as they ran."""

CONTEXT_ROOM = "context-room"
"""Patch id: a compaction leaves room for `keep_turns` more turns the size of the last one
(`Window._target`); runs compacted before it replay with the plan they ran."""

SUMMARY_TIMEOUT = timedelta(minutes=5)
"""A long span is summarised in several bounded provider calls within one activity."""

Send = Callable[[ModelRequest], Awaitable[ModelResponse]]


def error_type(exc: BaseException) -> str | None:
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    return cause.type if isinstance(cause, ApplicationError) else None


class ContextKeeper:
    def __init__(self, conversation: Conversation, outbox: Outbox) -> None:
        self._conversation = conversation
        self._outbox = outbox
        self._window = Window()
        self._restored = False
        self._room: bool | None = None
        """`CONTEXT_ROOM`'s answer, asked when a compaction is first due (no marker before)."""
        self._overheads: dict[str, int] = {}
        self._sent: tuple[int, int] | None = None
        """The last request's estimate and prompt length, to compare with its usage."""

    async def window(
        self, agent: Agent, prompt: list[Message], force: bool = False
    ) -> ContextWindow | None:
        """The window the next call carries, compacted first when due; None without a policy."""
        policy = agent.context
        if policy is None:
            return None
        if not self._restored:
            self._window.restore(self._conversation.items)
            self._restored = True
        limit = self._limits(agent, policy)
        overhead = self._overhead(agent)
        if (force or self._window.due(policy, limit, prompt, overhead)) and self._room is None:
            self._room = workflow.patched(CONTEXT_ROOM)
        step = self._window.plan(policy, limit, prompt, overhead, force, self._room is True)
        if step is not None and workflow.patched(CONTEXT_WINDOW):
            await self._compact(agent, policy, limit, prompt, step)
        window = self._window.current
        self._sent = (self._window.estimate(prompt, overhead, window), len(prompt))
        if window.start == 0 and window.clipped_before == 0:
            return None  # the whole conversation: nothing for the activity to apply
        return window.model_copy(update={"summary": self._window.summary})

    async def send(
        self, agent: Agent, prompt: list[Message], request: ModelRequest, send: Send
    ) -> ModelResponse:
        """`send(request)`; on a "too long" refusal, compact and try once more. A worker that
        lacks the window's summary gets the call again with it."""
        try:
            return await self._with_summary(send, request)
        except CALL_FAILED as exc:
            if agent.context is None or error_type(exc) != CONTEXT_TOO_LONG:
                raise
            if not workflow.patched(CONTEXT_WINDOW):
                raise
        self._window.too_long()
        window = await self.window(agent, prompt, force=True)
        return await self._with_summary(send, request.model_copy(update={"window": window}))

    def measured(self, response: ModelResponse) -> None:
        """The provider's count of the prompt just sent calibrates the estimate."""
        if self._sent is not None:
            self._window.measured(response.usage.input_tokens, self._sent[0])
            self._sent = None

    async def _with_summary(self, send: Send, request: ModelRequest) -> ModelResponse:
        try:
            return await send(request)
        except CALL_FAILED as exc:
            if error_type(exc) != WINDOW_MISS or request.window is None:
                raise
        summary = self._window.summary
        window = request.window.model_copy(update={"summary": summary})
        return await send(request.model_copy(update={"window": window}))

    async def _compact(
        self,
        agent: Agent,
        policy: ContextPolicy,
        limit: Limits,
        prompt: list[Message],
        step: Compaction,
    ) -> None:
        summary = self._window.summary
        if step.fold is not None:
            summary = await self._summarize(agent, policy, limit, prompt, step.fold)
        self._window.apply(step, summary)
        self._conversation.event("llm", COMPACTED, **self._window.event_data(step))

    async def _summarize(
        self,
        agent: Agent,
        policy: ContextPolicy,
        limit: Limits,
        prompt: list[Message],
        fold: tuple[int, int],
    ) -> str:
        start, end = fold
        outbox = self._outbox
        request = SummaryRequest(
            model=policy.summary_model or agent.model_string,
            instructions=SUMMARY_INSTRUCTIONS,
            start=start,
            end=end,
            previous=self._window.summary,
            # The summary call's own prompt stays inside the same budget, its reply included.
            input_tokens=max(1, int((limit.budget - policy.summary_tokens) / self._window.ratio)),
            clip_chars=policy.tool_output_chars,
            settings=ModelSettings(max_tokens=policy.summary_tokens, prompt_cache=False),
        )
        if agent.local_model or end > outbox.sent:
            # A local activity cannot query its run; messages its worker lacks travel inline.
            request.messages = prompt[start:end]
        else:
            request.transcript = outbox.transcript().model_copy(update={"length": end})
        start_call = (
            workflow.execute_local_activity
            if agent.local_model
            else partial(workflow.execute_activity, heartbeat_timeout=agent.heartbeat_timeout)
        )
        response: SummaryResponse = await start_call(
            SUMMARY_ACTIVITY,
            request,
            result_type=SummaryResponse,
            start_to_close_timeout=SUMMARY_TIMEOUT,
            retry_policy=agent.model_retry,
        )
        self._conversation.usage = self._conversation.usage + response.usage
        return response.summary

    def _limits(self, agent: Agent, policy: ContextPolicy) -> Limits:
        return limits(policy, agent.model_string, agent.settings.max_tokens)

    def _overhead(self, agent: Agent) -> int:
        """Instructions and tool specs, estimated once per agent."""
        known = self._overheads.get(agent.name)
        if known is None:
            specs = "".join(s.model_dump_json() for s in agent.tool_specs())
            known = estimate_tokens(agent.instructions) + estimate_tokens(specs)
            self._overheads[agent.name] = known
        return known
