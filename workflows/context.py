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
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # Pure data models and the agent definitions the worker registered.
    from durable_agent.authoring._agent import Agent
    from durable_agent.wire import (
        CONTEXT_TOO_LONG,
        COUNT_ACTIVITY,
        SUMMARY_ACTIVITY,
        SUMMARY_INSTRUCTIONS,
        WINDOW_MISS,
        ContextPolicy,
        ContextWindow,
        CountRequest,
        Message,
        ModelRequest,
        ModelResponse,
        ModelSettings,
        ServerContext,
        SummaryRequest,
        SummaryResponse,
        TokenCount,
        estimate_tokens,
    )

from .conversation import Conversation
from .failures import CALL_FAILED, reraise_cancellation
from .outbox import Outbox
from .window import COMPACTED, Compaction, Limits, Window, limits

CONTEXT_WINDOW = "context-window"
"""Patch id: runs from before context windows never compact (their histories hold no summary
calls), so they replay as they ran."""

CONTEXT_ROOM = "context-room"
"""Patch id: a compaction leaves room for `keep_turns` more turns the size of the last one
(`Window._target`); runs compacted before it replay with the plan they ran."""

TOKEN_COUNT = "token-count"
"""Patch id: near the limit the provider counts the prompt (`model.count_tokens`) before the
window is planned; runs from before it replay without those calls."""
COUNTING = frozenset({"anthropic", "openai"})
"""Model prefixes whose APIs count tokens (Messages, Responses); Chat Completions has none."""
TRIMMING = frozenset({"anthropic", "openai"})
"""...and those that trim a prompt themselves (`ContextPolicy.server_side`)."""
COUNT_MARGIN = 0.5
"""The estimate is scaled by the provider's last count, so only the messages since then are a
guess; taken to be off by up to half. A count is asked when that could change the decision:
the estimate lies within half those messages' estimate of `compact_at`. A turn far from it
makes no count. Measured (bench/context_window.py, 200 turns of 5 KB under 32k, Responses):
counting from 0.9 of `compact_at` on counted 18% of the calls (36 of 201), this rule 9%."""
COUNT_TIMEOUT = timedelta(seconds=30)
COUNT_RETRY = RetryPolicy(maximum_attempts=3)
"""A count that fails three times leaves the estimate to decide, never fails the run."""

SUMMARY_TIMEOUT = timedelta(minutes=5)
"""A long span is summarised in several bounded provider calls within one activity."""

Send = Callable[[ModelRequest], Awaitable[ModelResponse]]
Rewindow = Callable[[ModelRequest, ContextWindow | None], ModelRequest]
"""The outbox's `with_window`: a request with a window planned anew, its summary carried only
where the activity side lacks it."""


def _prefix(agent: Agent) -> str:
    return agent.model_string.partition(":")[0]


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
        self._count_due = False
        """`window` left the plan to `send`, which counts the request first."""
        self._measured_at = 0
        """The prompt's length when the provider last counted it (a call's usage, a count)."""
        self._uncounted: set[str] = set()
        """Models whose provider gave no count (a compatible server): not asked again."""
        self._trim_refused = False
        """A prompt the provider was to trim was refused as too long: the window trims now."""

    async def window(
        self, agent: Agent, prompt: list[Message], force: bool = False, counted: bool = False
    ) -> ContextWindow | None:
        """The window the next call carries, compacted first when due; None without a policy
        or when the provider trims. Near the limit, a provider that counts tokens is asked
        first (`send` does, `counted` when it has): the window is planned after its count."""
        policy = agent.context
        if policy is None:
            return None
        if not self._restored:
            self._window.restore(self._conversation.items)
            self._restored = True
        if not force and self._server_side(agent, policy):
            self._sent = None  # its usage counts the prompt after the provider trimmed it
            return None
        limit = self._limits(agent, policy)
        overhead = self._overhead(agent)
        estimate = self._window.estimate_now(policy, prompt, overhead)
        if not (force or counted) and self._count_first(agent, policy, limit, estimate):
            self._count_due = True
            self._sent = (estimate, len(prompt))
            return self._carried()
        if (force or self._window.due(policy, limit, prompt, overhead)) and self._room is None:
            self._room = workflow.patched(CONTEXT_ROOM)
        step = self._window.plan(policy, limit, prompt, overhead, force, self._room is True)
        if step is not None and workflow.patched(CONTEXT_WINDOW):
            await self._compact(agent, policy, limit, prompt, step)
        self._sent = (self._window.estimate(prompt, overhead, self._window.current), len(prompt))
        return self._carried()

    def _carried(self) -> ContextWindow | None:
        window = self._window.current
        if window.start == 0 and window.clipped_before == 0:
            return None  # the whole conversation: nothing for the activity to apply
        return window.model_copy(update={"summary": self._window.summary})

    async def send(
        self,
        agent: Agent,
        prompt: list[Message],
        request: ModelRequest,
        send: Send,
        rewindow: Rewindow,
    ) -> ModelResponse:
        """`send(request)`, its prompt counted first when `window` said so; on a "too long"
        refusal, compact and try once more. A worker that lacks the window's summary gets the
        call again with it."""
        policy = agent.context
        if self._count_due:
            self._count_due = False
            request = rewindow(request, await self._counted(agent, prompt, request))
        elif policy is not None and self._server_side(agent, policy):
            limit = self._limits(agent, policy)
            trim = ServerContext(
                trigger_tokens=max(limit.at, 1),
                keep_tool_uses=policy.keep_turns,
                clear_at_least=limit.at - limit.to,
            )
            request = request.model_copy(update={"server_context": trim})
        try:
            return await self._with_summary(send, request)
        except CALL_FAILED as exc:
            if policy is None or error_type(exc) != CONTEXT_TOO_LONG:
                raise
            if not workflow.patched(CONTEXT_WINDOW):
                raise
        # The provider's own trimming did not keep the prompt under its window: from here on
        # this run keeps the window itself.
        self._trim_refused |= request.server_context is not None  # a later refusal keeps it
        self._window.too_long()
        window = await self.window(agent, prompt, force=True)
        retry = rewindow(request, window).model_copy(update={"server_context": None})
        return await self._with_summary(send, retry)

    def measured(self, response: ModelResponse) -> None:
        """The provider's count of the prompt just sent calibrates the estimate."""
        if self._sent is not None:
            self._window.measured(response.usage.input_tokens, self._sent[0])
            self._measured_at = self._sent[1]
            self._sent = None

    def _server_side(self, agent: Agent, policy: ContextPolicy) -> bool:
        return policy.server_side and _prefix(agent) in TRIMMING and not self._trim_refused

    def _count_first(
        self, agent: Agent, policy: ContextPolicy, limit: Limits, estimate: int
    ) -> bool:
        """Near `compact_at`, a provider that counts is asked before the window compacts on an
        estimate or a call goes out that it would refuse."""
        if not policy.count_tokens or _prefix(agent) not in COUNTING:
            return False
        if agent.model_string in self._uncounted:
            return False
        unsure = self._window.newest(self._measured_at)
        if abs(estimate - limit.at) > COUNT_MARGIN * unsure:
            return False
        return workflow.patched(TOKEN_COUNT)

    async def _counted(
        self, agent: Agent, prompt: list[Message], request: ModelRequest
    ) -> ContextWindow | None:
        """The window planned on the provider's count of `request` (on the estimate when it
        has no count)."""
        estimate = self._sent[0] if self._sent is not None else 0
        counted = await self._count(agent, request, estimate)
        if counted is not None and counted.input_tokens is None:
            self._uncounted.add(agent.model_string)  # no endpoint: not asked again
        elif counted is not None and counted.input_tokens is not None:
            self._window.measured(counted.input_tokens, estimate)
            self._measured_at = len(prompt)
        return await self.window(agent, prompt, counted=True)

    async def _count(self, agent: Agent, request: ModelRequest, estimate: int) -> TokenCount | None:
        """`model.count_tokens` of the request as it stands; None when the call failed (the
        estimate then decides: a count is never worth a run)."""
        if request.window is not None:  # the worker that counts may lack the summary
            window = request.window.model_copy(update={"summary": self._window.summary})
            request = request.model_copy(update={"window": window})
        start_call = (
            workflow.execute_local_activity
            if agent.local_model
            else partial(workflow.execute_activity, heartbeat_timeout=agent.heartbeat_timeout)
        )
        try:
            counted: TokenCount = await start_call(
                COUNT_ACTIVITY,
                CountRequest(request=request, estimate=estimate),
                result_type=TokenCount,
                start_to_close_timeout=COUNT_TIMEOUT,
                retry_policy=COUNT_RETRY,
            )
        except CALL_FAILED as exc:
            reraise_cancellation(exc)
            return None
        return counted

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
            known = self._overheads[agent.name] = overhead(agent)
        return known


def overhead(agent: Agent) -> int:
    """The estimate of what every call of `agent` carries besides the conversation."""
    specs = "".join(s.model_dump_json() for s in agent.tool_specs())
    return estimate_tokens(agent.instructions) + estimate_tokens(specs)
