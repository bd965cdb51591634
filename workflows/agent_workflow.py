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
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    # Pure data models and the registry the worker filled outside the sandbox.
    import pydantic

    from durable_agent import _registry
    from durable_agent._agent import Agent, Handoff
    from durable_agent._hooks import Hook
    from durable_agent._tool import Tool, ToolArgumentsError, ToolKind
    from durable_agent.wire import (
        AGENT_NAME,
        AGENT_STATUS,
        AgentRunInput,
        AgentRunResult,
        AssistantMessage,
        HookInvocation,
        HookResult,
        Message,
        ModelRequest,
        ModelResponse,
        PendingCall,
        PendingKind,
        RunState,
        ToolCall,
        ToolInvocation,
        ToolMessage,
        ToolOutcome,
        UserMessage,
        prompt_messages,
    )

from ._calls import CALL_FAILED, cause_text, reraise_cancellation, whole_on_miss
from ._state import ConversationState, _Slot

MODEL_ACTIVITY = "model.complete"
# The server delays the first task of a run continued sooner than 1 s after its start
# (history.continueAsNewMinInterval); on dev server 1.32 we saw that delayed task never
# scheduled, so a run stays at least this long before it continues as new.
MIN_RUN_AGE = timedelta(seconds=2)
LOCAL_FLUSH_BYTES = 1_000_000


@workflow.defn(name="AgentWorkflow")
class AgentWorkflow(ConversationState):
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
        # Refs save history, and a local activity's input never reaches history.
        messages, refs = self._by_ref(prompt[self._sent :], use_refs=not agent.local_model)
        request = ModelRequest(
            model=agent.model_string,
            instructions=agent.instructions or None,
            messages=messages,
            transcript=self._transcript_ref(),
            content_refs=refs,
            tools=agent.tool_specs(),
            settings=agent.settings,
        )
        started = workflow.now()

        def whole() -> ModelRequest:
            self._sent = 0
            update = {"messages": prompt, "transcript": self._transcript_ref(), "content_refs": {}}
            return request.model_copy(update=update)

        try:
            response = await whole_on_miss(lambda r: self._execute_model(agent, r), request, whole)
        except CALL_FAILED as exc:
            reraise_cancellation(exc)
            self._set_state(RunState.FAILED)
            raise ApplicationError(
                f"model call failed: {cause_text(exc)}", type="ModelCallFailed", non_retryable=True
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

    async def _execute_model(self, agent: Agent, request: ModelRequest) -> ModelResponse:
        execute = (
            workflow.execute_local_activity if agent.local_model else workflow.execute_activity
        )
        response: ModelResponse = await execute(
            MODEL_ACTIVITY,
            request,
            result_type=ModelResponse,
            start_to_close_timeout=agent.model_timeout,
            retry_policy=agent.model_retry,
            # no summary: each is a payload the SDK encodes and visits per activity
            # (measured: a third of the worker's serialization work); the type names the tool.
        )
        return response

    def _by_ref(
        self, messages: list[Message], use_refs: bool
    ) -> tuple[list[Message], dict[int, str]]:
        """Tool results that the tool activity's worker keeps go by ref, not again in full:
        history already holds them once, in the tool activity's result. Matched by identity,
        so that a reused tool_call_id cannot take another message's content."""
        pending, self._content_refs = self._content_refs, []
        if not use_refs or not pending:
            return messages, {}
        out = list(messages)
        refs: dict[int, str] = {}
        for index, message in enumerate(messages):
            ref = next((r for m, r in pending if m is message), None)
            if ref is not None:
                refs[index] = ref
                out[index] = message.model_copy(update={"content": ""})
        return out, refs

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
                messages = prompt_messages(self._items)[: ref.length]
                return invocation.model_copy(update={"messages": messages})

            try:
                return await whole_on_miss(call, invocation, whole)
            except CALL_FAILED as exc:
                reraise_cancellation(exc)
                self._event("agent", "hook_failed", hook=hook.name, error=cause_text(exc))
                return HookResult()

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
                message = ToolMessage(
                    tool_call_id=call.id,
                    name=call.name,
                    content=outcome.content,
                    is_error=outcome.is_error,
                )
                if outcome.ref is not None:
                    self._content_refs.append((message, outcome.ref))
                return message
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
        except CALL_FAILED as exc:
            reraise_cancellation(exc)
            outcome = ToolOutcome(
                content=f"tool {tool.name} failed: {cause_text(exc)}", is_error=True
            )
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

    @staticmethod
    def _should_continue_as_new(params: AgentRunInput) -> bool:
        info = workflow.info()
        if workflow.now() - info.start_time < MIN_RUN_AGE:
            return False
        limit = params.continue_as_new_at_bytes
        if limit is not None and info.get_current_history_size() >= limit:
            return True
        return info.is_continue_as_new_suggested()


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


def _error(call: ToolCall, message: str) -> ToolMessage:
    return ToolMessage(tool_call_id=call.id, name=call.name, content=message, is_error=True)
