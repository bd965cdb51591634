"""The state of one conversation run and the handlers that read or change it from outside:
signals, updates (which validate, then answer) and queries. `AgentWorkflow` adds the loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models and the registry the worker filled outside the sandbox.
    import pydantic

    from durable_agent import _registry
    from durable_agent._agent import Agent
    from durable_agent.wire import (
        AGENT_STATUS,
        AgentRunResult,
        ApprovalSignal,
        AssistantMessage,
        EventSource,
        HistoryPage,
        HistoryQuery,
        Item,
        Message,
        PendingCall,
        PendingKind,
        RunState,
        Snapshot,
        StatusEvent,
        StatusInfo,
        SubmitResult,
        ToolCall,
        ToolMessage,
        ToolResultSignal,
        TranscriptPage,
        TranscriptQuery,
        TranscriptRef,
        Usage,
        UserMessage,
        UserMessageSignal,
        prompt_messages,
    )


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


class ConversationState:
    """Everything a run knows; handlers never await, so they need no lock."""

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
        self._content_refs: list[tuple[ToolMessage, str]] = []
        """Tool results not yet sent to the model whose worker keeps them, with their refs."""
        self._conversation_id = ""
        self._local_bytes = 0
        """Local-activity results held in the current workflow task, not yet in history."""
        self._stop_reason: str | None = None
        self._resumed: dict[str, PendingKind] = {}
        """Calls that were waiting in the snapshot this run started from."""

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


def _parse(payload: Any, model: Any) -> Any:
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        raise ValueError(f"malformed {model.__name__}: {exc.errors(include_url=False)}") from None


def _raise_if(reason: str | None) -> None:
    if reason is not None:
        raise ValueError(reason)
