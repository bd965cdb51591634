"""Intake: every signal and update the run takes, parsed into its wire shape, checked against
the call book's rules, and applied. Typed end to end: a payload becomes a `ToolResultSignal`,
`ApprovalSignal` or `UserMessageSignal` here, and nothing past this module sees raw JSON.

Signals cannot answer, so a bad one is recorded as a `signal_ignored` event and otherwise
ignored; an update's validator runs the same check and refuses, so a bad update never reaches
history. The handler checks again, because the SDK does not always run the validator: it skips
it for updates it takes for replayed ones, and SDK core 1.35 took live, never-validated updates
for replayed ones in fault storm (d) (delivered with a workflow task whose history had moved
on). What the validator would refuse then fails the update (`UPDATE_REFUSED`), never the
workflow task and never the run's state. Handlers never await, so they need no lock. Signals
between runs of a tree (`child_report`, `budget_exceeded`) are taken when well formed and
dropped otherwise.
"""

from __future__ import annotations

from typing import Any, TypeVar, assert_never

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    # Pure data models.
    import pydantic

    from durable_agent.wire import (
        ApprovalSignal,
        BudgetExceededSignal,
        ChildReport,
        InterruptRequest,
        SubmitResult,
        ToolResultSignal,
        UserMessage,
        UserMessageSignal,
    )

from .call_book import CallBook
from .conversation import Conversation
from .model_call import ModelCall
from .tree import Tree

Submission = ToolResultSignal | ApprovalSignal | UserMessageSignal
_Shape = TypeVar("_Shape", ToolResultSignal, ApprovalSignal, InterruptRequest, UserMessageSignal)
_Data = TypeVar("_Data", ChildReport, BudgetExceededSignal)

UPDATE_REFUSED = "UpdateRefused"
"""The error type of an update its handler refused (its validator had not run)."""


class Intake:
    def __init__(
        self, conversation: Conversation, calls: CallBook, tree: Tree, model: ModelCall
    ) -> None:
        self._conversation = conversation
        self._calls = calls
        self._tree = tree
        self._model = model

    # ------------------------------------------------------------------ what handlers call

    def signal(self, payloads: tuple[object, ...], shape: type[_Shape]) -> None:
        """Handlers take `*payloads` so that a signal with no input or several cannot raise."""
        try:
            if len(payloads) != 1:
                raise ValueError(f"expected one JSON input, got {len(payloads)}")
            parsed = parse(payloads[0], shape)
        except ValueError as exc:
            self._ignored(shape, str(exc))
            return
        reason = self.check(parsed)
        if reason is not None:
            self._ignored(shape, reason)
            return
        self.apply(parsed)

    def update(self, payload: object, shape: type[_Shape]) -> SubmitResult:
        """Checked again (see the module docstring): on replay the check passes as it did."""
        return self.apply(self._taken(payload, shape))

    def validate(self, payload: object, shape: type[_Shape]) -> None:
        reason = self.check(parse(payload, shape))
        if reason is not None:
            raise ValueError(reason)

    def interrupt(self, payload: object) -> SubmitResult:
        """Steer: the message is answered next, and a model call in flight is cut off (it is
        cancelled at once; what it had streamed, as the interrupter read it from the live bus,
        is kept as an `interrupted` event)."""
        request = self._taken(payload, InterruptRequest)
        cut = self._model.calling
        self._conversation.event("agent", "interrupt_received", cut=cut)
        result = self.apply(request)
        if self._model.interrupt(request.partial or ""):
            return SubmitResult(detail="model call interrupted; the message is answered next")
        return result

    def child_report(self, payloads: tuple[object, ...]) -> None:
        report = _parse_one(payloads, ChildReport)
        if report is not None:
            self._tree.receive(report)

    def budget_exceeded(self, payloads: tuple[object, ...]) -> None:
        """From the parent: the tree's budget is spent; this run starts no new model call."""
        told = _parse_one(payloads, BudgetExceededSignal)
        if told is not None:
            self._tree.stop(told.reason)

    # ------------------------------------------------------------------ the rules

    def check(self, sig: Submission) -> str | None:
        """Why the submission cannot be taken, or None."""
        match sig:
            case ToolResultSignal():
                return self._calls.check_result(sig, self._conversation.answered)
            case ApprovalSignal():
                return self._calls.check_approval(sig)
            case UserMessageSignal():
                return None  # always taken: it answers a handoff or waits for a safe point
            case _:
                assert_never(sig)

    def apply(self, sig: Submission) -> SubmitResult:
        conversation = self._conversation
        match sig:
            case ToolResultSignal():
                buffered = self._calls.take_result(sig)
                conversation.event(
                    "tool", "result_received", tool_call_id=sig.tool_call_id, buffered=buffered
                )
                return SubmitResult(
                    detail="buffered until the call waits" if buffered else "applied"
                )
            case ApprovalSignal():
                self._calls.take_approval(sig)
                conversation.event(
                    "agent",
                    "approval_received",
                    tool_call_id=sig.tool_call_id,
                    approved=sig.approved,
                )
                return SubmitResult(detail="approved" if sig.approved else "rejected")
            case UserMessageSignal():
                # A person's reply to a handoff answers it; anything else waits for a safe point.
                conversation.receive(
                    UserMessage(content=sig.content, name=sig.name, attachments=sig.attachments)
                )
                answered = self._calls.answer_handoff()
                if answered is None:
                    return SubmitResult(detail="queued for the next safe point")
                conversation.event("tool", "result_received", tool_call_id=answered, buffered=False)
                return SubmitResult(detail="answers the handoff")
            case _:
                assert_never(sig)

    def _taken(self, payload: object, shape: type[_Shape]) -> _Shape:
        """The update's payload once it passes its validator's check; else the update fails."""
        try:
            parsed = parse(payload, shape)
        except ValueError as exc:
            raise ApplicationError(str(exc), type=UPDATE_REFUSED, non_retryable=True) from None
        reason = self.check(parsed)
        if reason is not None:
            raise ApplicationError(reason, type=UPDATE_REFUSED, non_retryable=True)
        return parsed

    def _ignored(self, shape: type[Submission], reason: str) -> None:
        self._conversation.event("agent", "signal_ignored", signal=shape.__name__, reason=reason)


def parse(payload: Any, shape: type[_Shape]) -> _Shape:
    try:
        return shape.model_validate(payload)
    except pydantic.ValidationError as exc:
        # Without the input: a refusal recorded in history must not copy the payload again.
        errors = exc.errors(include_url=False, include_input=False)
        raise ValueError(f"malformed {shape.__name__}: {errors}") from None


def _parse_one(payloads: tuple[object, ...], shape: type[_Data]) -> _Data | None:
    """A signal between runs: one well-formed payload, else ignored (never fails the run)."""
    if len(payloads) != 1:
        return None
    try:
        return shape.model_validate(payloads[0])
    except pydantic.ValidationError:
        return None
