"""`AgentWorkflow`: the durable function-calling loop. Deterministic orchestration only.

One turn:
1. At a safe point (no tool call of the last response lacks its result), place messages that
   arrived meanwhile (signals, hooks), stop if a hook asked to, and continue as new if the
   history has grown large.
2. Call the model activity with the messages new since the last call (status events never go
   out; the activity side keeps the rest), then run the agent's hooks.
3. No tool calls: if messages are waiting, go to 1; otherwise the run ends, or in a
   conversation waits for the next user message.
4. Every tool call of the response is resolved by its own coroutine, all at once: invocable
   tools run as activities; approval tools wait for an `approval` signal first; external and
   long-running tools wait for a `tool_result` signal; a handoff switches agent or waits for a
   person. Deadlines are durable timers.
5. When every tool_call_id of the response has exactly one result, the results are appended
   in call order, and the loop goes back to 1.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # Pure data models and the registry the worker filled outside the sandbox.
    import pydantic

    from durable_agent import _registry
    from durable_agent._agent import Agent, Handoff
    from durable_agent._hooks import Hook, HookInvocation, HookResult
    from durable_agent._messages import (
        AssistantMessage,
        EventSource,
        Item,
        Message,
        StatusEvent,
        ToolCall,
        ToolMessage,
        Usage,
        UserMessage,
        prompt_messages,
    )
    from durable_agent._model_io import (
        ModelRequest,
        ModelResponse,
        TranscriptPage,
        TranscriptQuery,
        TranscriptRef,
    )
    from durable_agent._tool import Tool, ToolArgumentsError, ToolKind
    from durable_agent._workflow_io import (
        AGENT_NAME,
        AGENT_STATUS,
        AgentRunInput,
        AgentRunResult,
        ApprovalSignal,
        HistoryPage,
        HistoryQuery,
        PendingCall,
        PendingKind,
        RunState,
        Snapshot,
        StatusInfo,
        SubmitResult,
        ToolInvocation,
        ToolOutcome,
        ToolResultSignal,
        UserMessageSignal,
    )

MODEL_ACTIVITY = "model.complete"
# The server delays the first task of a run continued sooner than 1 s after its start
# (history.continueAsNewMinInterval); on dev server 1.32 we saw that delayed task never
# scheduled, so a run stays at least this long before it continues as new.
MIN_RUN_AGE = timedelta(seconds=2)
LOCAL_FLUSH_BYTES = 1_000_000


@dataclass
class _Slot:
    """One tool call of the response being resolved."""

    call: ToolCall
    accepts_result: bool
    needs_approval: bool
    pending: PendingCall | None = None
    arrived: ToolResultSignal | None = None
    approval: ApprovalSignal | None = None
    done: bool = False


@workflow.defn(name="AgentWorkflow")
class AgentWorkflow:
    def __init__(self) -> None:
        self._agent_name = ""
        self._items: list[Item] = []
        self._usage = Usage()
        self._turns = 0
        self._state = RunState.RUNNING
        self._slots: dict[str, _Slot] = {}
        self._inbox: list[Message] = []
        self._early: dict[str, ToolResultSignal] = {}
        self._handoff_to: str | None = None
        self._sent = 0
        """How many prompt messages of this run the model activity side already has."""
        self._conversation_id = ""
        self._local_bytes = 0
        """Local-activity results held in the current workflow task, not yet in history."""
        self._stop_reason: str | None = None
        self._resumed: dict[str, PendingKind] = {}
        """Calls that were waiting in the snapshot this run started from."""

    # ------------------------------------------------------------------ the loop

    @workflow.run
    async def run(self, *raw_input: Any) -> AgentRunResult:
        """Takes one `AgentRunInput` as JSON; untyped and variadic so that malformed or missing
        input fails the run with a readable error instead of failing workflow tasks for ever."""
        params = _parse_input(raw_input)
        self._start(params)
        agent = self._agent()
        max_turns = params.max_turns or agent.max_turns
        current = workflow.info().typed_search_attributes
        if current.get(AGENT_NAME) != agent.name or current.get(AGENT_STATUS) != self._state:
            # Runs started by AgentClient (or carried over by continue-as-new) have them
            # already: one history event less a run.
            workflow.upsert_search_attributes(
                [AGENT_NAME.value_set(agent.name), AGENT_STATUS.value_set(self._state.value)]
            )
        await self._resolve_open_calls()
        while True:
            await self._flush_local_results()
            self._place_inbox()
            if self._stop_reason is not None:
                self._event("agent", "stopped", reason=self._stop_reason)
                self._set_state(RunState.COMPLETED)
                return self._result()
            if self._should_continue_as_new(params):
                await workflow.wait_condition(workflow.all_handlers_finished)
                carried: dict[str, Any] = {
                    "snapshot": self.snapshot(),
                    "prompt": None,
                    "messages": [],
                    "conversation_id": self._conversation_id,
                    "transcript_length": self._sent,
                }
                workflow.continue_as_new(params.model_copy(update=carried))
            if self._turns >= max_turns:
                self._set_state(RunState.FAILED)
                raise ApplicationError(
                    f"max_turns ({max_turns}) reached without a final answer",
                    type="MaxTurnsExceeded",
                    non_retryable=True,
                )
            response = await self._call_model()
            await self._run_hooks()
            if response.message.tool_calls:
                await self._resolve_calls(response.message.tool_calls)
                continue
            if self._inbox or self._stop_reason is not None:
                continue  # injected or signalled messages get an answer; a stop is recorded
            if not params.conversation:
                self._set_state(RunState.COMPLETED)
                return self._result()
            self._set_state(RunState.WAITING_FOR_USER)
            await workflow.wait_condition(lambda: bool(self._inbox))
            self._set_state(RunState.RUNNING)

    def _start(self, params: AgentRunInput) -> None:
        self._conversation_id = params.conversation_id or str(workflow.uuid4())
        self._sent = params.transcript_length if params.conversation_id else 0
        snap = params.snapshot
        if snap is not None:
            self._agent_name = snap.agent
            self._items = list(snap.items)
            self._usage = snap.usage
            self._turns = snap.turns
            self._inbox = list(snap.inbox) + self._inbox
            self._early = dict(snap.early_results)
            self._resumed = {p.tool_call_id: p.kind for p in snap.pending}
            kind = "continued_as_new" if params.conversation_id else "resumed"
            self._event("agent", kind, turns=snap.turns, messages=len(snap.items))
        else:
            self._agent_name = params.agent
        try:
            self._agent()
        except _registry.UnknownAgentError as exc:
            raise ApplicationError(str(exc), type="UnknownAgent", non_retryable=True) from None
        if snap is None:
            self._items.extend(params.messages)
            if params.prompt is not None:
                self._items.append(UserMessage(content=params.prompt))
            self._event("agent", "run_started", agent=self._agent_name)

    async def _call_model(self) -> ModelResponse:
        agent = self._agent()
        self._turns += 1
        self._event("agent", "turn_started", turn=self._turns, agent=agent.name)
        prompt = prompt_messages(self._items)
        request = ModelRequest(
            model=agent.model_string,
            instructions=agent.instructions or None,
            messages=prompt[self._sent :],
            transcript=self._transcript_ref(),
            tools=agent.tool_specs(),
            settings=agent.settings,
        )
        started = workflow.now()
        execute = (
            workflow.execute_local_activity if agent.local_model else workflow.execute_activity
        )
        try:
            response: ModelResponse = await execute(
                MODEL_ACTIVITY,
                request,
                result_type=ModelResponse,
                start_to_close_timeout=agent.model_timeout,
                retry_policy=agent.model_retry,
                # no summary: each is a payload the SDK encodes and visits per activity
                # (measured: a third of the worker's serialization work); the type names the tool.
            )
        except ActivityError as exc:
            self._set_state(RunState.FAILED)
            raise ApplicationError(
                f"model call failed: {_cause(exc)}", type="ModelCallFailed", non_retryable=True
            ) from exc
        self._usage = self._usage + response.usage
        if agent.local_model:
            self._local_bytes += len(response.message.model_dump_json())
        response.message.agent = agent.name
        self._event(
            "llm",
            "model_called",
            model=response.model or agent.model_string,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            latency_ms=int((workflow.now() - started).total_seconds() * 1000),
        )
        self._items.append(response.message)
        self._sent = len(prompt) + 1  # the activity side keeps the reply it produced
        return response

    async def _flush_local_results(self) -> None:
        """Local activities that finish at once keep one workflow task open for many turns,
        and its completion carries every result: past a few MB it exceeds a gRPC message. A
        short timer ends the task, so its results are written to history."""
        if self._local_bytes >= LOCAL_FLUSH_BYTES:
            self._local_bytes = 0
            await workflow.sleep(timedelta(milliseconds=1))

    async def _run_hooks(self) -> None:
        """Hooks see the conversation by reference and may inject messages or stop the run."""
        agent = self._agent()
        hooks = agent.hook_list
        if not hooks:
            return
        ref = self._transcript_ref()

        async def run(hook: Hook) -> HookResult:
            execute = workflow.execute_local_activity if hook.local else workflow.execute_activity
            invocation = HookInvocation(
                hook=hook.name, agent=agent.name, turn=self._turns, transcript=ref
            )
            try:
                result: HookResult = await execute(
                    hook.activity_name,
                    invocation,
                    result_type=HookResult,
                    start_to_close_timeout=hook.timeout,
                    retry_policy=hook.retry,
                )
            except ActivityError as exc:
                self._event("agent", "hook_failed", hook=hook.name, error=_cause(exc))
                return HookResult()
            return result

        for hook, result in zip(hooks, await asyncio.gather(*(run(h) for h in hooks)), strict=True):
            self._inbox.extend(result.inject)
            if result.stop and self._stop_reason is None:
                self._stop_reason = result.reason or f"hook {hook.name} asked to stop"
            self._event(
                "agent", "hook_ran", hook=hook.name, injected=len(result.inject), stop=result.stop
            )

    async def _resolve_open_calls(self) -> None:
        """After a snapshot, finish the tool calls of the last response that lack results."""
        last = next((m for m in reversed(self._items) if isinstance(m, AssistantMessage)), None)
        if last is None or not last.tool_calls:
            return
        answered = {m.tool_call_id for m in self._items if isinstance(m, ToolMessage)}
        open_calls = [c for c in last.tool_calls if c.id not in answered]
        if open_calls:
            await self._resolve_calls(open_calls)

    async def _resolve_calls(self, calls: list[ToolCall]) -> None:
        agent = self._agent()
        self._slots = {c.id: self._slot_for(agent, c) for c in calls}
        for call_id, early in list(self._early.items()):
            slot = self._slots.get(call_id)
            if slot is not None and slot.accepts_result:
                slot.arrived = early
                del self._early[call_id]
        results = await asyncio.gather(*(self._resolve(agent, s) for s in self._slots.values()))
        self._items.extend(results)
        self._slots = {}
        self._set_state(RunState.RUNNING)
        if self._handoff_to is not None:
            previous, self._agent_name, self._handoff_to = self._agent_name, self._handoff_to, None
            self._event(
                "agent", "handoff", source_agent=previous, target=self._agent_name, to="agent"
            )
            workflow.upsert_search_attributes([AGENT_NAME.value_set(self._agent_name)])

    @staticmethod
    def _slot_for(agent: Agent, call: ToolCall) -> _Slot:
        target = agent.find_tool(call.name)
        if isinstance(target, Handoff):
            return _Slot(call, accepts_result=target.agent is None, needs_approval=False)
        if isinstance(target, Tool):
            return _Slot(
                call,
                accepts_result=target.kind is not ToolKind.INVOCABLE,
                needs_approval=target.requires_approval,
            )
        return _Slot(call, accepts_result=False, needs_approval=False)

    async def _resolve(self, agent: Agent, slot: _Slot) -> ToolMessage:
        call = slot.call
        target = agent.find_tool(call.name)
        try:
            if target is None:
                known = ", ".join(s.name for s in agent.tool_specs()) or "none"
                return _error(call, f"unknown tool {call.name!r}; available tools: {known}")
            if isinstance(target, Handoff):
                return await self._handoff(slot, target)
            return await self._run_tool(slot, target)
        finally:
            slot.done = True

    async def _run_tool(self, slot: _Slot, tool: Tool) -> ToolMessage:
        call = slot.call
        try:
            tool.parse_arguments(call.arguments)
        except ToolArgumentsError as exc:
            self._event("tool", "tool_failed", tool=tool.name, tool_call_id=call.id, error=str(exc))
            return _error(call, f"{exc}. Fix the arguments and call {tool.name} again.")
        resumed = self._resumed.pop(call.id, None)
        already_started = resumed in ("long_running", "external")
        if slot.needs_approval and not already_started:
            if not await self._wait(slot, "approval", tool.deadline, tool.fail_on_deadline):
                return _error(call, f"no approval for {tool.name} within {tool.deadline}")
            assert slot.approval is not None
            if not slot.approval.approved:
                reason = f": {slot.approval.reason}" if slot.approval.reason else ""
                self._event("tool", "tool_rejected", tool=tool.name, tool_call_id=call.id)
                return _error(call, f"the user rejected this call{reason}")
        if tool.kind is not ToolKind.EXTERNAL and not already_started:
            outcome = await self._run_activity(call, tool)
            if tool.kind is ToolKind.INVOCABLE or outcome.is_error:
                return ToolMessage(
                    tool_call_id=call.id,
                    name=call.name,
                    content=outcome.content,
                    is_error=outcome.is_error,
                )
        kind: PendingKind = "long_running" if tool.kind is ToolKind.LONG_RUNNING else "external"
        if not await self._wait(slot, kind, tool.deadline, tool.fail_on_deadline):
            return _error(call, f"no result for {tool.name} within {tool.deadline}; it timed out")
        assert slot.arrived is not None
        return ToolMessage(
            tool_call_id=call.id,
            name=call.name,
            content=slot.arrived.content_text(),
            is_error=slot.arrived.is_error,
        )

    async def _run_activity(self, call: ToolCall, tool: Tool) -> ToolOutcome:
        self._event("tool", "tool_started", tool=tool.name, tool_call_id=call.id)
        execute = workflow.execute_local_activity if tool.local else workflow.execute_activity
        try:
            outcome: ToolOutcome = await execute(
                tool.activity_name,
                ToolInvocation(
                    tool_call_id=call.id,
                    name=call.name,
                    arguments=call.arguments,
                    agent=self._agent_name,
                ),
                result_type=ToolOutcome,
                start_to_close_timeout=tool.timeout,
                retry_policy=tool.retry,
                # no summary: each is a payload the SDK encodes and visits per activity
                # (measured: a third of the worker's serialization work); the type names the tool.
            )
        except ActivityError as exc:
            outcome = ToolOutcome(content=f"tool {tool.name} failed: {_cause(exc)}", is_error=True)
        if tool.local:
            self._local_bytes += len(outcome.content)
        self._items.extend(outcome.events)
        kind = "tool_failed" if outcome.is_error else "tool_finished"
        self._event("tool", kind, tool=tool.name, tool_call_id=call.id)
        return outcome

    async def _handoff(self, slot: _Slot, handoff: Handoff) -> ToolMessage:
        call = slot.call
        if handoff.agent is not None:
            if self._handoff_to is not None:
                return _error(call, "only one handoff per response; this one was ignored")
            self._handoff_to = handoff.agent.name
            return ToolMessage(
                tool_call_id=call.id, name=call.name, content=f"Transferred to {handoff.name}."
            )
        self._event(
            "agent", "handoff", source_agent=self._agent_name, target=handoff.name, to="person"
        )
        await self._wait(slot, "handoff", None, False)
        assert slot.arrived is not None
        return ToolMessage(
            tool_call_id=call.id,
            name=call.name,
            content=slot.arrived.content_text(),
            is_error=slot.arrived.is_error,
        )

    async def _wait(
        self, slot: _Slot, kind: PendingKind, deadline: timedelta | None, fail: bool
    ) -> bool:
        """Wait durably for the slot's signal; False when the deadline passed first."""
        now = workflow.now()
        slot.pending = PendingCall(
            tool_call_id=slot.call.id,
            name=slot.call.name,
            arguments=slot.call.arguments,
            kind=kind,
            agent=self._agent_name,
            since=now,
            deadline=now + deadline if deadline is not None else None,
        )
        self._event("tool", "waiting", tool=slot.call.name, tool_call_id=slot.call.id, kind=kind)
        self._refresh_state()

        def ready() -> bool:
            return slot.approval is not None if kind == "approval" else slot.arrived is not None

        arrived = True
        try:
            await workflow.wait_condition(ready, timeout=deadline)
        except TimeoutError:
            arrived = False
            self._event("tool", "deadline_passed", tool=slot.call.name, tool_call_id=slot.call.id)
            if fail:
                self._set_state(RunState.FAILED)
                raise ApplicationError(
                    f"tool call {slot.call.id} ({slot.call.name}) passed its deadline",
                    type="ToolDeadlineExceeded",
                    non_retryable=True,
                ) from None
        # Not in a `finally`: on eviction the coroutine is closed outside the workflow loop.
        slot.pending = None
        self._refresh_state()
        return arrived

    # ------------------------------------------------------------------ signals and updates

    @workflow.signal(name="tool_result")
    def tool_result(self, *payloads: Any) -> None:
        self._submit(payloads, ToolResultSignal, self._check_result, self._apply_result)

    @workflow.update(name="submit_tool_result")
    def submit_tool_result(self, payload: Any) -> SubmitResult:
        return self._apply_result(ToolResultSignal.model_validate(payload))

    @submit_tool_result.validator
    def _validate_tool_result(self, payload: Any) -> None:
        _raise_if(self._check_result(_parse(payload, ToolResultSignal)))

    @workflow.signal(name="approval")
    def approval(self, *payloads: Any) -> None:
        self._submit(payloads, ApprovalSignal, self._check_approval, self._apply_approval)

    @workflow.update(name="submit_approval")
    def submit_approval(self, payload: Any) -> SubmitResult:
        return self._apply_approval(ApprovalSignal.model_validate(payload))

    @submit_approval.validator
    def _validate_approval(self, payload: Any) -> None:
        _raise_if(self._check_approval(_parse(payload, ApprovalSignal)))

    @workflow.signal(name="user_message")
    def user_message(self, *payloads: Any) -> None:
        self._submit(payloads, UserMessageSignal, lambda _: None, self._apply_user_message)

    @workflow.update(name="submit_user_message")
    def submit_user_message(self, payload: Any) -> SubmitResult:
        return self._apply_user_message(UserMessageSignal.model_validate(payload))

    @submit_user_message.validator
    def _validate_user_message(self, payload: Any) -> None:
        _parse(payload, UserMessageSignal)

    def _submit(self, payloads: tuple[Any, ...], model: Any, check: Any, apply: Any) -> None:
        """Signals cannot answer: a bad one is recorded in the stream and otherwise ignored.
        Handlers take `*payloads` so that a signal with no input or several cannot raise."""
        try:
            if len(payloads) != 1:
                raise ValueError(f"expected one JSON input, got {len(payloads)}")
            parsed = _parse(payloads[0], model)
        except ValueError as exc:
            self._event("agent", "signal_ignored", signal=model.__name__, reason=str(exc))
            return
        reason = check(parsed)
        if reason is not None:
            self._event("agent", "signal_ignored", signal=model.__name__, reason=reason)
            return
        apply(parsed)

    def _check_result(self, sig: ToolResultSignal) -> str | None:
        slot = self._slots.get(sig.tool_call_id)
        if slot is None:
            if any(
                isinstance(m, ToolMessage) and m.tool_call_id == sig.tool_call_id
                for m in self._items
            ):
                return f"tool call {sig.tool_call_id} already has a result"
            return f"unknown tool_call_id {sig.tool_call_id}: no such call is waiting"
        if not slot.accepts_result:
            return f"tool call {sig.tool_call_id} ({slot.call.name}) does not take a result signal"
        if slot.arrived is not None or slot.done:
            return f"tool call {sig.tool_call_id} already has a result"
        if slot.needs_approval and slot.approval is None:
            return f"tool call {sig.tool_call_id} is waiting for approval, not for a result"
        return None

    def _apply_result(self, sig: ToolResultSignal) -> SubmitResult:
        slot = self._slots[sig.tool_call_id]
        slot.arrived = sig
        buffered = slot.pending is None
        self._event("tool", "result_received", tool_call_id=sig.tool_call_id, buffered=buffered)
        return SubmitResult(detail="buffered until the call waits" if buffered else "applied")

    def _check_approval(self, sig: ApprovalSignal) -> str | None:
        slot = self._slots.get(sig.tool_call_id)
        if slot is None or not slot.needs_approval:
            return f"tool call {sig.tool_call_id} is not waiting for approval"
        if slot.approval is not None or slot.done:
            return f"tool call {sig.tool_call_id} was already decided"
        return None

    def _apply_approval(self, sig: ApprovalSignal) -> SubmitResult:
        self._slots[sig.tool_call_id].approval = sig
        self._event(
            "agent", "approval_received", tool_call_id=sig.tool_call_id, approved=sig.approved
        )
        return SubmitResult(detail="approved" if sig.approved else "rejected")

    def _apply_user_message(self, sig: UserMessageSignal) -> SubmitResult:
        """A person's reply to a handoff answers it; anything else waits for a safe point."""
        self._inbox.append(UserMessage(content=sig.content, name=sig.name))
        for slot in self._slots.values():
            if slot.pending is not None and slot.pending.kind == "handoff":
                slot.arrived = ToolResultSignal(
                    tool_call_id=slot.call.id, content="Handed over; their reply follows."
                )
                self._event("tool", "result_received", tool_call_id=slot.call.id, buffered=False)
                return SubmitResult(detail="answers the handoff")
        return SubmitResult(detail="queued for the next safe point")

    # ------------------------------------------------------------------ queries

    @workflow.query(name="status")
    def status(self) -> StatusInfo:
        return StatusInfo(
            state=self._state,
            agent=self._agent_name,
            turn=self._turns,
            usage=self._usage,
            pending=sum(1 for s in self._slots.values() if s.pending is not None),
            messages=len(prompt_messages(self._items)),
        )

    @workflow.query(name="pending_tool_calls")
    def pending_tool_calls(self) -> list[PendingCall]:
        return [s.pending for s in self._slots.values() if s.pending is not None]

    @workflow.query(name="history")
    def history(self, query: HistoryQuery | None = None) -> HistoryPage:
        query = query or HistoryQuery()
        sources = set(query.events)
        items: list[Item] = []
        size, index = 0, query.since
        while index < len(self._items):
            item = self._items[index]
            if not isinstance(item, StatusEvent) or item.source in sources:
                size += len(item.model_dump_json())
                if items and size > query.max_bytes:
                    break
                items.append(item)
            index += 1
        more = index < len(self._items)
        ended = self._state in (RunState.COMPLETED, RunState.FAILED)
        return HistoryPage(items=items, next=index, more=more, done=ended and not more)

    @workflow.query(name="transcript")
    def transcript(self, query: TranscriptQuery) -> TranscriptPage:
        """Prompt messages for a model or hook activity whose cache missed."""
        messages = prompt_messages(self._items)[: query.end]
        page: list[Message] = []
        size, index = 0, query.start
        while index < len(messages):
            size += len(messages[index].model_dump_json())
            if page and size > query.max_bytes:
                break
            page.append(messages[index])
            index += 1
        return TranscriptPage(messages=page, next=index)

    @workflow.query(name="snapshot")
    def snapshot(self) -> Snapshot:
        return Snapshot(
            agent=self._agent_name,
            items=self._items,
            pending=self.pending_tool_calls(),
            usage=self._usage,
            turns=self._turns,
            inbox=self._inbox,
            early_results={
                **self._early,
                **{i: s.arrived for i, s in self._slots.items() if s.arrived and not s.done},
            },
        )

    # ------------------------------------------------------------------ helpers

    def _transcript_ref(self) -> TranscriptRef:
        return TranscriptRef(
            workflow_id=workflow.info().workflow_id,
            conversation_id=self._conversation_id,
            length=self._sent,
        )

    def _agent(self) -> Agent:
        return _registry.lookup(workflow.info().task_queue, self._agent_name)

    def _place_inbox(self) -> None:
        """The safe point: every tool call so far has its result, so messages can go in."""
        if self._inbox:
            self._items.extend(self._inbox)
            self._inbox = []

    @staticmethod
    def _should_continue_as_new(params: AgentRunInput) -> bool:
        info = workflow.info()
        if workflow.now() - info.start_time < MIN_RUN_AGE:
            return False
        limit = params.continue_as_new_at_bytes
        if limit is not None and info.get_current_history_size() >= limit:
            return True
        return info.is_continue_as_new_suggested()

    def _refresh_state(self) -> None:
        kinds = {s.pending.kind for s in self._slots.values() if s.pending is not None}
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

    def _event(self, source: EventSource, kind: str, /, **data: Any) -> None:
        self._items.append(StatusEvent(source=source, kind=kind, at=workflow.now(), data=data))

    def _result(self) -> AgentRunResult:
        messages = prompt_messages(self._items)
        final = next(
            (
                m.content
                for m in reversed(messages)
                if isinstance(m, AssistantMessage) and m.content
            ),
            None,
        )
        return AgentRunResult(
            final_text=final,
            messages=messages,
            usage=self._usage,
            turns=self._turns,
            agent=self._agent_name,
        )


def _parse_input(raw: tuple[Any, ...]) -> AgentRunInput:
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


def _parse(payload: Any, model: Any) -> Any:
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        raise ValueError(f"malformed {model.__name__}: {exc.errors(include_url=False)}") from None


def _raise_if(reason: str | None) -> None:
    if reason is not None:
        raise ValueError(reason)


def _error(call: ToolCall, message: str) -> ToolMessage:
    return ToolMessage(tool_call_id=call.id, name=call.name, content=message, is_error=True)


def _cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc)
