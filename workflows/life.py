"""The run's life: its input, its start (fresh, resumed from a snapshot, or carried over by
continue-as-new), its state as observers and the `AgentStatus` search attribute see it, its
continue-as-new, and how it ends (the final state is set here, by `end`, and nowhere else).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    # Pure data models and the registry the worker filled outside the sandbox.
    import pydantic

    from durable_agent.authoring import _registry
    from durable_agent.authoring._agent import Agent
    from durable_agent.wire import (
        AgentRunInput,
        AgentRunResult,
        CarryOver,
        EventKind,
        PendingKind,
        RunState,
        Snapshot,
        UserMessage,
    )

from .call_book import CallBook
from .conversation import Conversation
from .index import SearchIndex
from .outbox import Outbox
from .outcomes import Final, Outcome, RunAgain, Wait
from .outputs import OutputCheck

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

Ending = Literal["completed", "stopped", "cancelled", "budget_exceeded", "guardrail_tripped"]


def parse_input(raw: tuple[object, ...]) -> AgentRunInput:
    """Untyped and variadic on purpose: malformed or missing input fails the run with a
    readable error instead of failing workflow tasks for ever."""
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


class RunLife:
    def __init__(
        self,
        conversation: Conversation,
        calls: CallBook,
        outbox: Outbox,
        index: SearchIndex,
        outputs: OutputCheck,
    ) -> None:
        self._conversation = conversation
        self._calls = calls
        self._outbox = outbox
        self._index = index
        self._outputs = outputs
        self.state = RunState.RUNNING
        self.reason: str | None = None
        """Why the run ended as it did (the `status` query's `reason`), once it has."""
        calls.watch(self._follow_waits)

    def agent(self) -> Agent:
        """The agent that speaks now."""
        return _registry.lookup(workflow.info().task_queue, self._conversation.agent)

    # ------------------------------------------------------------------ the start

    def start(self, params: AgentRunInput) -> Agent:
        conversation = self._conversation
        self._outbox.conversation_id = params.conversation_id or str(workflow.uuid4())
        self._outbox.sent = params.transcript_length if params.conversation_id else 0
        self._outputs.failures = params.output_failures
        snap = params.snapshot
        if snap is not None:
            conversation.restore(snap)
            self._calls.early = dict(snap.early_results)
            self._calls.resumed = {p.tool_call_id: p.kind for p in snap.pending}
            self._calls.answered = {m.tool_call_id: m for m in snap.answered}
            kind: EventKind = "continued_as_new" if params.conversation_id else "resumed"
            conversation.event("agent", kind, turns=snap.turns, messages=len(snap.items))
        else:
            conversation.agent = params.agent
        try:
            agent = self.agent()
        except _registry.UnknownAgentError as exc:
            raise ApplicationError(str(exc), type="UnknownAgent", non_retryable=True) from None
        if snap is None:
            for message in params.messages:
                conversation.append(message)
            if params.prompt is not None:
                conversation.append(UserMessage(content=params.prompt))
            conversation.event("agent", "run_started", agent=params.agent)
        return agent

    def resumed(self, params: AgentRunInput) -> Outcome:
        """Where a run with no open calls carries on: a run from a snapshot that ended with an
        answer and has nothing waiting keeps that answer (no new model call)."""
        conversation = self._conversation
        if params.snapshot is not None and conversation.ends_in_answer() and not conversation.inbox:
            return Wait() if params.conversation else Final()
        if not conversation.message_count and not conversation.inbox:
            return Wait()  # a conversation started empty (`AgentClient.send`): its message comes
        return RunAgain()

    # ------------------------------------------------------------------ state

    def set_state(self, state: RunState) -> None:
        if state is not self.state:
            self.state = state
            self._index.status(state)

    def _follow_waits(self, kinds: set[PendingKind]) -> None:
        """The run's state follows what its calls wait for, at the moment it changes."""
        if "approval" in kinds:
            self.set_state(RunState.WAITING_FOR_APPROVAL)
        elif "handoff" in kinds:
            self.set_state(RunState.WAITING_FOR_USER)
        elif kinds:
            self.set_state(RunState.WAITING_FOR_TOOLS)
        else:
            self.set_state(RunState.RUNNING)

    async def wait_for_user(self) -> None:
        """A conversation's answer is given: wait, durably, for the next message."""
        self.set_state(RunState.WAITING_FOR_USER)
        await workflow.wait_condition(lambda: bool(self._conversation.inbox))
        self.set_state(RunState.RUNNING)

    def hand_off(self, target: str) -> None:
        previous, self._conversation.agent = self._conversation.agent, target
        self._conversation.event(
            "agent", "handoff", source_agent=previous, target=target, to="agent"
        )
        self._index.agent(target)

    # ------------------------------------------------------------------ continue-as-new

    @staticmethod
    def continue_as_new_due(params: AgentRunInput) -> bool:
        info = workflow.info()
        if workflow.now() - info.start_time < MIN_RUN_AGE:
            return False
        limit = params.continue_as_new_at_bytes
        if limit is not None and info.get_current_history_size() >= limit:
            return True
        return info.is_continue_as_new_suggested()

    async def continue_as_new(self, params: AgentRunInput) -> NoReturn:
        """The whole state goes over to the next run (at a safe point: nothing is in flight)."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        carried = CarryOver(
            snapshot=self.snapshot(),
            conversation_id=self._outbox.conversation_id,
            transcript_length=self._outbox.sent,
            stream_offset=params.stream_offset,  # unused since deltas left the run (issue 20)
            output_failures=self._outputs.failures,  # output_retries bound them across runs
        )
        workflow.continue_as_new(carried.into(params))

    def snapshot(self) -> Snapshot:
        calls = self._calls
        return self._conversation.snapshot(
            calls.pending(), calls.unapplied_results(), calls.answers()
        )

    # ------------------------------------------------------------------ the end

    def end(
        self,
        state: RunState,
        outcome: Ending = "completed",
        pending: bool = False,
        reason: str | None = None,
    ) -> AgentRunResult:
        """The run's final state and why, and its result (with the calls still waiting, if
        asked)."""
        self.reason = reason
        self.set_state(state)
        result = self._conversation.result(outcome, self._calls.pending() if pending else None)
        return result.model_copy(update={"reason": reason})

    def failed(self, reason: str) -> None:
        """A `RunFailure` ends the run: its state and message, before the failure is raised on."""
        self.reason = reason
        self.set_state(RunState.FAILED)

    def cancelled(self) -> AgentRunResult:
        """The run was cancelled (`AgentClient.cancel`, `temporal workflow cancel`): it ends
        cleanly, and its result lists the calls that were still waiting."""
        self._conversation.event("agent", "cancelled", pending=len(self._calls.pending()))
        return self.end(RunState.CANCELLED, "cancelled", pending=True)
