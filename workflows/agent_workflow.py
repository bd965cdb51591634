"""`AgentWorkflow`: the durable function-calling loop. Deterministic orchestration only.

One turn:
1. At a safe point (no tool call of the last response lacks its result), place messages that
   arrived meanwhile (signals, hooks), stop if a hook asked to, and continue as new if the
   history has grown large.
2. Call the model activity with what the activity side lacks (`Outbox`; status events never go
   out), then run the agent's hooks. An agent with MCP servers first lists their tools, once a
   run (`MCPToolsets`).
3. No tool calls: if messages are waiting, go to 1; otherwise the run ends, or in a
   conversation waits for the next user message.
4. Every tool call of the response is resolved by its own coroutine, all at once (`ToolCalls`,
   over the `CallBook`):
   invocable tools (and MCP servers' tools) run as activities; approval tools wait for an
   `approval` signal first; external and long-running tools wait for a `tool_result` signal;
   a handoff switches agent or waits for a person. Deadlines are durable timers.
5. When every tool_call_id of the response has exactly one result, the results are appended
   in call order, and the loop goes back to 1.
Each turn ends in one outcome: final, run again, handoff, wait or stop.

The run's state is three plain components: the `Conversation` (items, inbox, snapshots), the
`CallBook` (the open calls and the rules signals obey) and the `Outbox` (what calls carry).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    # Pure data models and the registry the worker filled outside the sandbox; telemetry
    # records metrics only through the replay-safe meter the workflow hands it.
    import pydantic
    from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState

    from durable_agent import _registry, telemetry
    from durable_agent._agent import Agent
    from durable_agent._hooks import Hook
    from durable_agent._mcp import MCPServer
    from durable_agent.wire import (
        AGENT_NAME,
        AGENT_STATUS,
        AGENT_TOKENS,
        ENDED,
        EVENT_SOURCES,
        MODEL_ACTIVITY,
        WORKFLOW_TYPE,
        AgentRunInput,
        AgentRunResult,
        ApprovalSignal,
        Budget,
        BudgetExceededSignal,
        ChildReport,
        EventKind,
        HistoryPage,
        HistoryQuery,
        HookInvocation,
        HookResult,
        LivePage,
        LiveQuery,
        MCPListTools,
        MCPToolList,
        ModelRequest,
        ModelResponse,
        PendingCall,
        Query,
        RunState,
        Signal,
        Snapshot,
        StatusInfo,
        SubmitResult,
        ToolCall,
        ToolResultSignal,
        TranscriptPage,
        TranscriptQuery,
        Update,
        Usage,
        UserMessage,
        UserMessageSignal,
    )

from .call_book import CallBook
from .children import Children
from .conversation import Conversation
from .deltas import Deltas
from .failures import CALL_FAILED, cause_text, is_cancelled_exception, reraise_cancellation
from .outbox import Outbox, whole_on_miss
from .tool_calls import ToolCalls
from .toolsets import MCPToolsets

# A run continued as new sooner than the server's history.workflowIdReuseMinimalInterval
# (1 s by default; the older history.continueAsNewMinInterval key is gone since server 1.25)
# after it started gets a first-task backoff of (interval - age): ~0.95 s on dev server 1.32,
# and it always ends. Staying at least this long (the interval, with margin) avoids it, and with
# it two hazards: a run whose carried history already passes continue_as_new_at_bytes would
# otherwise continue as new in its first task, every run, without a turn (measured: 42 runs,
# 0 turns in 40 s); and an Update rejected during the backoff sends the first task to a sticky
# queue that server 1.32 refuses, so it waits out sticky_queue_schedule_to_start_timeout and a
# caching worker can lose a signal sent meanwhile. tests/test_continue_as_new_interval.py pins
# the server side.
MIN_RUN_AGE = timedelta(seconds=2)
CANCEL_WITH_RESULT = "cancel-with-result"
TOKENS_ATTRIBUTE = "agent-tokens"
"""Patch id: runs keep the `AgentTokens` search attribute."""
"""Patch id: a cancelled run completes with a result listing its waiting calls."""


# ---------------------------------------------------------------------- a turn's outcome


@dataclass(frozen=True)
class Final:
    """The model answered without tool calls: the run ends."""


@dataclass(frozen=True)
class RunAgain:
    """Tool results or new messages are in: the model speaks next."""


@dataclass(frozen=True)
class HandedOff:
    """A handoff to another agent: it speaks next."""

    agent: str


@dataclass(frozen=True)
class Wait:
    """A conversation's answer is given: wait for the next user message."""


@dataclass(frozen=True)
class Stop:
    """A hook asked the run to stop."""

    reason: str


@dataclass(frozen=True)
class BudgetSpent:
    """The tree's budget is reached: no new model call."""

    reason: str


Outcome = Final | RunAgain | HandedOff | Wait | Stop | BudgetSpent
_Shape = TypeVar("_Shape", ToolResultSignal, ApprovalSignal, UserMessageSignal)
_Data = TypeVar("_Data", ChildReport, BudgetExceededSignal)


@workflow.defn(name=WORKFLOW_TYPE)
class AgentWorkflow:
    @workflow.init
    def __init__(self, *raw_input: object) -> None:
        offset = 0
        with contextlib.suppress(ApplicationError):  # run() reports a malformed input
            offset = _parse_input(raw_input).stream_offset
        self._deltas = Deltas(WorkflowStream(WorkflowStreamState(base_offset=offset)))
        self._model_call: workflow.ActivityHandle[ModelResponse] | None = None
        self._interrupted = False
        self._conversation = Conversation(workflow.now)
        self._calls = CallBook()
        self._outbox = Outbox(workflow.info().workflow_id, "")
        self._mcp = MCPToolsets()
        self._state = RunState.RUNNING
        self._children = Children(changed=self._check_budget)
        self._budget: Budget | None = None
        self._budget_spent: str | None = None
        self._tokens_listed = 0
        self._tool_calls = ToolCalls(
            self._conversation,
            self._calls,
            self._outbox,
            self._mcp,
            self._children,
            waits_changed=self._refresh_state,
            failed=partial(self._set_state, RunState.FAILED),
            budget_left=self._budget_left,
        )

    # ------------------------------------------------------------------ the loop

    @workflow.run
    async def run(self, *raw_input: object) -> AgentRunResult:
        """Takes one `AgentRunInput` as JSON; untyped and variadic so that malformed or missing
        input fails the run with a readable error instead of failing workflow tasks for ever."""
        params = _parse_input(raw_input)
        self._start(params)
        agent = self._agent()
        self._budget = params.budget or agent.budget
        parent = workflow.info().parent
        if parent is not None:  # a sub-agent's run: its parent lists its calls, counts its usage
            self._reporter = asyncio.ensure_future(self._report_to(parent.workflow_id))
        max_turns = params.max_turns or agent.max_turns
        current = workflow.info().typed_search_attributes
        if current.get(AGENT_NAME) != agent.name or current.get(AGENT_STATUS) != self._state:
            # Runs started by AgentClient (or carried over by continue-as-new) have them
            # already: one history event less a run.
            workflow.upsert_search_attributes(
                [AGENT_NAME.value_set(agent.name), AGENT_STATUS.value_set(self._state.value)]
            )
        try:
            outcome = await self._resume(params)
            while True:
                if isinstance(outcome, HandedOff):
                    self._hand_off(outcome.agent)
                elif isinstance(outcome, Wait):
                    self._set_state(RunState.WAITING_FOR_USER)
                    await workflow.wait_condition(lambda: bool(self._conversation.inbox))
                    self._set_state(RunState.RUNNING)
                elif isinstance(outcome, Final):
                    self._set_state(RunState.COMPLETED)
                    return self._conversation.result()
                elif isinstance(outcome, Stop):
                    self._conversation.event("agent", "stopped", reason=outcome.reason)
                    self._set_state(RunState.COMPLETED)
                    return self._conversation.result("stopped")
                elif isinstance(outcome, BudgetSpent):
                    self._set_state(RunState.BUDGET_EXCEEDED)
                    return self._conversation.result("budget_exceeded")
                outcome = await self._turn(params, max_turns)
        except (asyncio.CancelledError, ChildWorkflowError, *CALL_FAILED) as exc:
            # Runs cancelled before this version ended as Temporal's "canceled", no result.
            if not is_cancelled_exception(exc) or not workflow.patched(CANCEL_WITH_RESULT):
                raise
            return self._cancelled()

    def _cancelled(self) -> AgentRunResult:
        """The run was cancelled (`AgentClient.cancel`, `temporal workflow cancel`): it ends
        cleanly, and its result lists the calls that were still waiting."""
        pending = self._calls.pending()
        self._conversation.event("agent", "cancelled", pending=len(pending))
        self._set_state(RunState.CANCELLED)
        return self._conversation.result("cancelled", pending)

    async def _resume(self, params: AgentRunInput) -> Outcome:
        """Where a run from a snapshot carries on: the calls its last response still owes; or,
        if it ended with an answer and nothing waits, that answer stands (no new model call)."""
        conversation = self._conversation
        open_calls = conversation.open_calls()
        if open_calls:
            return await self._resolve_calls(open_calls)
        if params.snapshot is not None and conversation.ends_in_answer() and not conversation.inbox:
            return Wait() if params.conversation else Final()
        if not conversation.message_count and not conversation.inbox:
            return Wait()  # a conversation started empty (`AgentClient.send`): its message comes
        return RunAgain()

    async def _turn(self, params: AgentRunInput, max_turns: int) -> Outcome:
        """Steps 1 to 5 of the module docstring."""
        conversation = self._conversation
        if self._outbox.flush_due():
            await workflow.sleep(timedelta(milliseconds=1))
        conversation.place_inbox()
        if conversation.stop_reason is not None:
            return Stop(conversation.stop_reason)
        if self._should_continue_as_new(params):
            self._deltas.detach_pollers()  # a stream subscriber's poll would hold the run open
            await workflow.wait_condition(workflow.all_handlers_finished)
            carried: dict[str, object] = {
                "stream_offset": self._deltas.end,
                "snapshot": self.snapshot(),
                "prompt": None,
                "messages": [],
                "conversation_id": self._outbox.conversation_id,
                "transcript_length": self._outbox.sent,
            }
            workflow.continue_as_new(params.model_copy(update=carried))
        spent = self._budget_spent or self._budget_reason()
        if spent is not None:
            self._stop_tree(spent)
            return BudgetSpent(spent)
        if conversation.turns >= max_turns:
            self._set_state(RunState.FAILED)
            raise ApplicationError(
                f"max_turns ({max_turns}) reached without a final answer",
                type="MaxTurnsExceeded",
                non_retryable=True,
            )
        response = await self._call_model()
        if response is None:
            return RunAgain()  # interrupted: the interrupting message is answered next
        await self._run_hooks()
        if response.message.tool_calls:
            return await self._resolve_calls(response.message.tool_calls)
        if conversation.inbox or conversation.stop_reason is not None:
            return RunAgain()  # injected or signalled messages get an answer; a stop is recorded
        return Wait() if params.conversation else Final()

    def _start(self, params: AgentRunInput) -> None:
        self._outbox.conversation_id = params.conversation_id or str(workflow.uuid4())
        self._outbox.sent = params.transcript_length if params.conversation_id else 0
        snap = params.snapshot
        if snap is not None:
            self._conversation.restore(snap)
            self._calls.early = dict(snap.early_results)
            self._calls.resumed = {p.tool_call_id: p.kind for p in snap.pending}
            self._calls.answered = {m.tool_call_id: m for m in snap.answered}
            kind: EventKind = "continued_as_new" if params.conversation_id else "resumed"
            self._conversation.event("agent", kind, turns=snap.turns, messages=len(snap.items))
        else:
            self._conversation.agent = params.agent
        try:
            self._agent()
        except _registry.UnknownAgentError as exc:
            raise ApplicationError(str(exc), type="UnknownAgent", non_retryable=True) from None
        if snap is None:
            for message in params.messages:
                self._conversation.append(message)
            if params.prompt is not None:
                self._conversation.append(UserMessage(content=params.prompt))
            self._conversation.event("agent", "run_started", agent=params.agent)

    # ------------------------------------------------------------------ model and hooks

    async def _call_model(self) -> ModelResponse | None:
        """The turn's model call and its message; None when an interrupt cut it off."""
        agent, conversation, outbox = self._agent(), self._conversation, self._outbox
        await self._list_mcp_tools(agent)
        conversation.turns += 1
        conversation.event("agent", "turn_started", turn=conversation.turns, agent=agent.name)
        prompt = conversation.prompt()
        request = outbox.model_request(agent, prompt, self._mcp.specs(agent), conversation.turns)
        started = workflow.now()
        self._deltas.started(conversation.turns)
        self._interrupted = False
        try:
            response = await whole_on_miss(
                lambda r: self._execute_model(agent, r),
                request,
                lambda: outbox.whole(request, prompt),
            )
        except CALL_FAILED as exc:
            if self._interrupted and is_cancelled_exception(exc):
                # What it had said is shown to people, never given to a model as its own.
                conversation.event(
                    "llm", "interrupted", turn=conversation.turns, partial=self._deltas.text()
                )
                self._deltas.ended()
                return None
            self._deltas.ended()
            reraise_cancellation(exc)
            self._set_state(RunState.FAILED)
            raise ApplicationError(
                f"model call failed: {cause_text(exc)}", type="ModelCallFailed", non_retryable=True
            ) from exc
        conversation.usage = conversation.usage + response.usage
        self._check_budget()
        telemetry.record_model_call(
            workflow.metric_meter(), agent.name, agent.model_string, response.usage
        )
        message = response.message
        if agent.local_model:
            outbox.held_locally(len(message.model_dump_json()))
        if message.agent is None:  # recorded before the activity stamped it
            message.agent = agent.name
        conversation.event(
            "llm",
            "model_called",
            model=response.model or agent.model_string,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            latency_ms=int((workflow.now() - started).total_seconds() * 1000),
        )
        conversation.append(message)
        self._deltas.ended()
        outbox.replied(prompt)
        return response

    async def _execute_model(self, agent: Agent, request: ModelRequest) -> ModelResponse:
        # Heartbeats: a dead worker's call is retried in seconds, and a cancelled run cancels
        # it (TRY_CANCEL, the default: the run does not wait for the call to acknowledge).
        # Local activities have none.
        start = (
            workflow.start_local_activity
            if agent.local_model
            else partial(workflow.start_activity, heartbeat_timeout=agent.heartbeat_timeout)
        )
        call: workflow.ActivityHandle[ModelResponse] = start(
            MODEL_ACTIVITY,
            request,
            result_type=ModelResponse,
            start_to_close_timeout=agent.model_timeout,
            retry_policy=agent.model_retry,
            # no summary: each is a payload the SDK encodes and visits per activity
            # (measured: a third of the worker's serialization work); the type names the tool.
        )
        self._model_call = call  # an interrupt cancels it
        try:
            return await call
        finally:
            self._model_call = None

    async def _list_mcp_tools(self, agent: Agent) -> None:
        """List the tools of the agent's MCP servers this run has not listed yet, all at once.
        No command at all for an agent without MCP servers. A listing that fails is tried again
        before the next model call; meanwhile that server's tools are not offered."""
        missing = self._mcp.missing(agent)
        if missing:
            await asyncio.gather(*(self._list_mcp_server(agent, s) for s in missing))

    async def _list_mcp_server(self, agent: Agent, server: MCPServer) -> None:
        try:
            listing: MCPToolList = await workflow.execute_activity(
                server.list_activity,
                MCPListTools(server=server.name),
                result_type=MCPToolList,
                start_to_close_timeout=server.timeout,
                retry_policy=server.retry,
                heartbeat_timeout=agent.heartbeat_for(server),
            )
        except CALL_FAILED as exc:
            reraise_cancellation(exc)
            self._conversation.event(
                "tool", "mcp_list_failed", server=server.name, error=cause_text(exc)
            )
            return
        self._mcp.add(listing)
        self._conversation.event(
            "tool", "mcp_tools_listed", server=server.name, tools=len(listing.tools)
        )

    async def _run_hooks(self) -> None:
        """Hooks see the conversation by reference and may inject messages or stop the run."""
        agent, conversation = self._agent(), self._conversation
        hooks = agent.hook_list
        if not hooks:
            return
        results = await asyncio.gather(*(self._run_hook(agent, h) for h in hooks))
        for hook, result in zip(hooks, results, strict=True):
            for message in result.inject:
                conversation.receive(message)
            if result.stop and conversation.stop_reason is None:
                conversation.stop_reason = result.reason or f"hook {hook.name} asked to stop"
            conversation.event(
                "agent", "hook_ran", hook=hook.name, injected=len(result.inject), stop=result.stop
            )

    async def _run_hook(self, agent: Agent, hook: Hook) -> HookResult:
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

    # ------------------------------------------------------------------ tool calls

    async def _resolve_calls(self, calls: list[ToolCall]) -> Outcome:
        """Steps 4 and 5: every call answered by its own coroutine, results in call order."""
        if not calls:
            return RunAgain()
        agent = self._agent()
        await self._list_mcp_tools(agent)  # a run resumed from a snapshot may owe MCP calls
        opened = self._calls.open(agent, calls, self._mcp.tools(agent))
        answers = await asyncio.gather(*(self._tool_calls.resolve(agent, c) for c in opened))
        for message, ref in answers:
            index = self._conversation.append(message)
            if ref is not None:
                self._outbox.keep_ref(index, ref)
        handoff = self._calls.close()
        self._set_state(RunState.RUNNING)
        return HandedOff(handoff) if handoff is not None else RunAgain()

    def _hand_off(self, target: str) -> None:
        previous, self._conversation.agent = self._conversation.agent, target
        self._conversation.event(
            "agent", "handoff", source_agent=previous, target=target, to="agent"
        )
        workflow.upsert_search_attributes([AGENT_NAME.value_set(target)])

    # ------------------------------------------------------------------ sub-agents and budgets

    def _usage(self) -> Usage:
        """This run's usage with its sub-agents' (ended ones are in the conversation's)."""
        return self._conversation.usage + self._children.usage()

    def _budget_reason(self) -> str | None:
        return None if self._budget is None else self._budget.reached(self._usage())

    def _budget_left(self) -> Budget | None:
        """What a sub-agent started now may use: the budget less what the tree has used."""
        return None if self._budget is None else self._budget.left(self._usage())

    def _check_budget(self) -> None:
        """After usage moved (a model call here, a report from below): once the budget is
        reached, the sub-agents still running start no new model call either."""
        reason = self._budget_reason()
        if reason is not None:
            self._stop_tree(reason)
        self._list_tokens()

    def _stop_tree(self, reason: str) -> None:
        if self._budget_spent is None:
            self._budget_spent = reason
            self._conversation.event("agent", "budget_exceeded", reason=reason)
        self._children.stop(reason)

    def _report(self) -> ChildReport:
        return ChildReport(
            run=workflow.info().workflow_id,
            pending=self.pending_tool_calls(),
            usage=self._usage(),
        )

    async def _report_to(self, parent_id: str) -> None:
        """A sub-agent's run tells its parent whenever what it waits for or has used changed:
        one signal at a time, the latest state."""
        parent = workflow.get_external_workflow_handle(parent_id)
        sent = ChildReport(run=workflow.info().workflow_id)

        def changed() -> bool:
            return self._report() != sent

        while True:
            await workflow.wait_condition(changed)
            sent = self._report()
            try:
                await parent.signal(Signal.CHILD_REPORT, sent)
            except CALL_FAILED as exc:  # the parent has ended
                reraise_cancellation(exc)
                return

    @workflow.signal(name=Signal.CHILD_REPORT)
    def child_report(self, *payloads: Any) -> None:
        report = _parse_one(payloads, ChildReport)
        if report is not None:
            self._children.receive(report)

    @workflow.signal(name=Signal.BUDGET_EXCEEDED)
    def budget_exceeded(self, *payloads: Any) -> None:
        """From the parent: the tree's budget is spent; this run starts no new model call."""
        told = _parse_one(payloads, BudgetExceededSignal)
        if told is not None:
            self._stop_tree(told.reason)

    def _list_tokens(self) -> None:
        """Keep the `AgentTokens` search attribute within 10% of the tree's usage: one upsert
        per ~10% of growth, not one per model call."""
        tokens = self._usage().total_tokens
        if tokens > self._tokens_listed * 1.1 and workflow.patched(TOKENS_ATTRIBUTE):
            self._tokens_listed = tokens
            workflow.upsert_search_attributes([AGENT_TOKENS.value_set(tokens)])

    # ------------------------------------------------------------------ signals and updates

    @workflow.signal(name=Signal.TOOL_RESULT)
    def tool_result(self, *payloads: Any) -> None:
        self._receive(payloads, ToolResultSignal, self._check_result, self._apply_result)

    @workflow.update(name=Update.SUBMIT_TOOL_RESULT)
    def submit_tool_result(self, payload: Any) -> SubmitResult:
        return self._apply_result(_parse(payload, ToolResultSignal))

    @submit_tool_result.validator
    def _validate_tool_result(self, payload: Any) -> None:
        _refuse_if(self._check_result(_parse(payload, ToolResultSignal)))

    @workflow.signal(name=Signal.APPROVAL)
    def approval(self, *payloads: Any) -> None:
        self._receive(payloads, ApprovalSignal, self._calls.check_approval, self._apply_approval)

    @workflow.update(name=Update.SUBMIT_APPROVAL)
    def submit_approval(self, payload: Any) -> SubmitResult:
        return self._apply_approval(_parse(payload, ApprovalSignal))

    @submit_approval.validator
    def _validate_approval(self, payload: Any) -> None:
        _refuse_if(self._calls.check_approval(_parse(payload, ApprovalSignal)))

    @workflow.signal(name=Signal.USER_MESSAGE)
    def user_message(self, *payloads: Any) -> None:
        self._receive(payloads, UserMessageSignal, _always, self._apply_user_message)

    @workflow.update(name=Update.SUBMIT_USER_MESSAGE)
    def submit_user_message(self, payload: Any) -> SubmitResult:
        return self._apply_user_message(_parse(payload, UserMessageSignal))

    @submit_user_message.validator
    def _validate_user_message(self, payload: Any) -> None:
        _parse(payload, UserMessageSignal)

    @workflow.update(name=Update.INTERRUPT)
    def interrupt(self, payload: Any) -> SubmitResult:
        """Steer: the message is answered next, and a model call in flight is cut off (it is
        cancelled at once; what it had streamed is kept as an `interrupted` event)."""
        sig = _parse(payload, UserMessageSignal)
        self._conversation.event("agent", "interrupt_received", cut=self._model_call is not None)
        result = self._apply_user_message(sig)
        if self._model_call is not None:
            self._interrupted = True
            self._model_call.cancel()
            return SubmitResult(detail="model call interrupted; the message is answered next")
        return result

    @interrupt.validator
    def _validate_interrupt(self, payload: Any) -> None:
        _parse(payload, UserMessageSignal)

    def _receive(
        self,
        payloads: tuple[object, ...],
        shape: type[_Shape],
        check: Callable[[_Shape], str | None],
        apply: Callable[[_Shape], SubmitResult],
    ) -> None:
        """Signals cannot answer: a bad one is recorded in the stream and otherwise ignored.
        Handlers take `*payloads` so that a signal with no input or several cannot raise.
        Handlers never await, so they need no lock."""
        try:
            if len(payloads) != 1:
                raise ValueError(f"expected one JSON input, got {len(payloads)}")
            parsed = _parse(payloads[0], shape)
        except ValueError as exc:
            self._conversation.event(
                "agent", "signal_ignored", signal=shape.__name__, reason=str(exc)
            )
            return
        reason = check(parsed)
        if reason is not None:
            self._conversation.event(
                "agent", "signal_ignored", signal=shape.__name__, reason=reason
            )
            return
        apply(parsed)

    def _check_result(self, sig: ToolResultSignal) -> str | None:
        return self._calls.check_result(sig, self._conversation.answered)

    def _apply_result(self, sig: ToolResultSignal) -> SubmitResult:
        buffered = self._calls.take_result(sig)
        self._conversation.event(
            "tool", "result_received", tool_call_id=sig.tool_call_id, buffered=buffered
        )
        return SubmitResult(detail="buffered until the call waits" if buffered else "applied")

    def _apply_approval(self, sig: ApprovalSignal) -> SubmitResult:
        self._calls.take_approval(sig)
        self._conversation.event(
            "agent", "approval_received", tool_call_id=sig.tool_call_id, approved=sig.approved
        )
        return SubmitResult(detail="approved" if sig.approved else "rejected")

    def _apply_user_message(self, sig: UserMessageSignal) -> SubmitResult:
        """A person's reply to a handoff answers it; anything else waits for a safe point."""
        self._conversation.receive(UserMessage(content=sig.content, name=sig.name))
        answered = self._calls.answer_handoff()
        if answered is None:
            return SubmitResult(detail="queued for the next safe point")
        self._conversation.event("tool", "result_received", tool_call_id=answered, buffered=False)
        return SubmitResult(detail="answers the handoff")

    # ------------------------------------------------------------------ queries

    @workflow.query(name=Query.STATUS)
    def status(self) -> StatusInfo:
        conversation = self._conversation
        return StatusInfo(
            state=self._state,
            agent=conversation.agent,
            turn=conversation.turns,
            usage=self._usage(),
            pending=len(self.pending_tool_calls()),
            messages=conversation.message_count,
        )

    @workflow.query(name=Query.PENDING_TOOL_CALLS)
    def pending_tool_calls(self) -> list[PendingCall]:
        """This run's waiting calls, then its sub-agents' (each naming its run)."""
        return self._calls.pending() + self._children.pending()

    @workflow.query(name=Query.HISTORY)
    def history(self, query: HistoryQuery | None = None) -> HistoryPage:
        return self._conversation.history(query or HistoryQuery(), self._state in ENDED)

    @workflow.query(name=Query.LIVE)
    def live(self, query: LiveQuery) -> LivePage:
        """What observers read (`AgentClient.events`): the stream from an index, with every
        event source, then the streaming call's deltas from an offset."""
        ended = self._state in ENDED
        everything = HistoryQuery(
            events=list(EVENT_SOURCES), since=query.items, max_bytes=query.max_bytes
        )
        page = self._conversation.history(everything, ended)
        deltas, next_deltas = ([], query.deltas) if page.more else self._deltas.read(query.deltas)
        return LivePage(
            items=page.items,
            next_items=page.next,
            deltas=deltas,
            next_deltas=next_deltas,
            more=page.more,
            state=self._state,
            streaming=self._deltas.turn is not None,
            done=page.done,
        )

    @workflow.query(name=Query.TRANSCRIPT)
    def transcript(self, query: TranscriptQuery) -> TranscriptPage:
        """Prompt messages for a model or hook activity whose cache missed."""
        return self._conversation.transcript(query)

    @workflow.query(name=Query.SNAPSHOT)
    def snapshot(self) -> Snapshot:
        calls = self._calls
        return self._conversation.snapshot(
            calls.pending(), calls.unapplied_results(), calls.answers()
        )

    # ------------------------------------------------------------------ run state

    def _agent(self) -> Agent:
        return _registry.lookup(workflow.info().task_queue, self._conversation.agent)

    def _refresh_state(self) -> None:
        kinds = self._calls.waiting_kinds()
        if "approval" in kinds:
            self._set_state(RunState.WAITING_FOR_APPROVAL)
        elif "handoff" in kinds:
            self._set_state(RunState.WAITING_FOR_USER)
        elif kinds:
            self._set_state(RunState.WAITING_FOR_TOOLS)
        else:
            self._set_state(RunState.RUNNING)

    def _set_state(self, state: RunState) -> None:
        if state is not self._state:
            self._state = state
            workflow.upsert_search_attributes([AGENT_STATUS.value_set(state.value)])

    @staticmethod
    def _should_continue_as_new(params: AgentRunInput) -> bool:
        info = workflow.info()
        if workflow.now() - info.start_time < MIN_RUN_AGE:
            return False
        limit = params.continue_as_new_at_bytes
        if limit is not None and info.get_current_history_size() >= limit:
            return True
        return info.is_continue_as_new_suggested()


def _parse_input(raw: tuple[object, ...]) -> AgentRunInput:
    if len(raw) != 1:
        raise ApplicationError(
            f"AgentWorkflow takes one input, got {len(raw)}",
            type="InvalidInput",
            non_retryable=True,
        )
    if isinstance(raw[0], AgentRunInput):
        return raw[0]
    try:
        return AgentRunInput.model_validate(raw[0])
    except pydantic.ValidationError as exc:
        raise ApplicationError(
            f"malformed AgentWorkflow input: {exc}", type="InvalidInput", non_retryable=True
        ) from None


def _parse(payload: Any, shape: type[_Shape]) -> _Shape:
    try:
        return shape.model_validate(payload)
    except pydantic.ValidationError as exc:
        raise ValueError(f"malformed {shape.__name__}: {exc.errors(include_url=False)}") from None


def _parse_one(payloads: tuple[object, ...], shape: type[_Data]) -> _Data | None:
    """A signal between runs: one well-formed payload, else ignored (never fails the run)."""
    if len(payloads) != 1:
        return None
    try:
        return shape.model_validate(payloads[0])
    except pydantic.ValidationError:
        return None


def _refuse_if(reason: str | None) -> None:
    if reason is not None:
        raise ValueError(reason)


def _always(_: UserMessageSignal) -> None:
    """A user message is always taken: it answers a handoff or waits for a safe point."""
