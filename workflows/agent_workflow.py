"""`AgentWorkflow`: the durable function-calling loop. Deterministic orchestration only.

One turn:
1. At a safe point (no tool call of the last response lacks its result), place messages that
   arrived meanwhile (signals, hooks), stop if a hook asked to, continue as new if the history
   has grown large (`RunLife`), and stop if the tree's budget is spent (`Tree`).
2. Call the model (`ModelCall`) with what the activity side lacks (`Outbox`; status events never
   go out), then run the agent's hooks (`Hooks`). An agent with MCP servers first lists their
   tools, once a run (`toolsets`).
3. No tool calls: if messages are waiting, go to 1; otherwise the run ends, or in a
   conversation waits for the next user message.
4. Every tool call of the response is resolved by its own coroutine, all at once (`ToolCalls`,
   over the `CallBook`): invocable tools (and MCP servers' tools) run as activities; approval
   tools wait for an `approval` signal first; external and long-running tools wait for a
   `tool_result` signal; a handoff switches agent or waits for a person; a sub-agent is a child
   run. Deadlines are durable timers.
5. When every tool_call_id of the response has exactly one result, the results are appended
   in call order, and the loop goes back to 1.
Each turn ends in one `Outcome` (final, run again, handoff, wait, stop, budget spent); `run`
matches it, and sets the run's final state in one place (`RunLife.end`, or `failed` for a
`RunFailure`, or `cancelled`). Signals and updates go to `Intake`, each handler one line.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Any, assert_never

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    # Pure data models.
    from durable_agent.wire import (
        ENDED,
        EVENT_SOURCES,
        WORKFLOW_TYPE,
        AgentRunInput,
        AgentRunResult,
        ApprovalSignal,
        HistoryPage,
        HistoryQuery,
        InterruptRequest,
        LivePage,
        LiveQuery,
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
        UserMessageSignal,
    )

from .call_book import CallBook
from .conversation import Conversation
from .failures import CALL_FAILED, is_cancelled_exception
from .guardrails import Guardrails
from .hooks import Hooks
from .index import SearchIndex
from .intake import Intake
from .life import MIN_RUN_AGE, RunLife, parse_input
from .model_call import ModelCall
from .outbox import Outbox
from .outcomes import (
    BudgetSpent,
    Final,
    GuardrailTripped,
    HandedOff,
    Outcome,
    RunAgain,
    RunFailure,
    Stop,
    Wait,
)
from .outputs import OutputCheck
from .tool_calls import ToolCalls
from .toolsets import MCPToolsets, list_missing
from .tree import Tree

__all__ = ["MIN_RUN_AGE", "AgentWorkflow"]

CANCEL_WITH_RESULT = "cancel-with-result"
"""Patch id: a cancelled run completes with a result listing its waiting calls."""


@workflow.defn(name=WORKFLOW_TYPE)
class AgentWorkflow:
    @workflow.init
    def __init__(self, *raw_input: object) -> None:
        conversation, calls = Conversation(workflow.now), CallBook()
        outbox, mcp, index = Outbox(workflow.info().workflow_id, ""), MCPToolsets(), SearchIndex()
        self._conversation, self._calls, self._outbox, self._mcp = conversation, calls, outbox, mcp
        self._outputs = OutputCheck(conversation)
        self._life = RunLife(conversation, calls, outbox, index, self._outputs)
        self._tree = Tree(conversation, calls, index)
        self._model = ModelCall(conversation, outbox, mcp)
        self._hooks = Hooks(conversation, outbox)
        self._tool_calls = ToolCalls(conversation, calls, outbox, mcp, self._tree)
        self._intake = Intake(conversation, calls, self._tree, self._model)
        self._index = index
        self._guardrails = Guardrails(conversation)

    # ------------------------------------------------------------------ the loop

    @workflow.run
    async def run(self, *raw_input: object) -> AgentRunResult:
        """Takes one `AgentRunInput` as JSON; untyped and variadic so that malformed or missing
        input fails the run with a readable error instead of failing workflow tasks for ever."""
        params = parse_input(raw_input)
        agent = self._life.start(params)
        self._tree.start(params.budget or agent.budget)
        self._index.start(agent.name, self._conversation.turns)
        max_turns = params.max_turns or agent.max_turns
        try:
            open_calls = self._conversation.open_calls()
            outcome = await self._resolve(open_calls) if open_calls else self._life.resumed(params)
            while True:
                match outcome:
                    case Final(output=output):
                        result = self._life.end(RunState.COMPLETED)
                        return result.model_copy(update={"output": output})
                    case Stop(reason=reason):
                        self._conversation.event("agent", "stopped", reason=reason)
                        return self._life.end(RunState.COMPLETED, "stopped", reason=reason)
                    case GuardrailTripped(reason=reason):
                        tripped = RunState.GUARDRAIL_TRIPPED
                        return self._life.end(tripped, "guardrail_tripped", reason=reason)
                    case BudgetSpent(reason=reason):
                        spent = RunState.BUDGET_EXCEEDED
                        return self._life.end(spent, "budget_exceeded", reason=reason)
                    case HandedOff(agent=target):
                        self._life.hand_off(target)
                    case Wait():
                        await self._life.wait_for_user()
                    case RunAgain():
                        pass
                    case _:
                        assert_never(outcome)
                outcome = await self._turn(params, max_turns)
        except RunFailure as failure:
            self._life.failed(failure.message)
            raise
        except (asyncio.CancelledError, ChildWorkflowError, *CALL_FAILED) as exc:
            # Runs cancelled before this version ended as Temporal's "canceled", no result.
            if not is_cancelled_exception(exc) or not workflow.patched(CANCEL_WITH_RESULT):
                raise
            return self._life.cancelled()

    async def _turn(self, params: AgentRunInput, max_turns: int) -> Outcome:
        """Steps 1 to 5 of the module docstring."""
        conversation = self._conversation
        if self._outbox.flush_due():
            await workflow.sleep(timedelta(milliseconds=1))
        conversation.place_inbox()
        if self._hooks.stop is not None:
            return self._hooks.stop
        if self._life.continue_as_new_due(params):
            await self._life.continue_as_new(params)
        spent = self._tree.spent_now()
        if spent is not None:
            return spent
        if conversation.turns >= max_turns:
            raise RunFailure(
                f"max_turns ({max_turns}) reached without a final answer", "MaxTurnsExceeded"
            )
        agent = self._life.agent()
        await list_missing(self._mcp, agent, conversation)
        tripped = await self._guardrails.check_input(agent)  # agents with input guardrails
        if tripped is not None:
            return tripped
        response = await self._model.call(agent)
        if response is None:
            return RunAgain()  # interrupted: the interrupting message is answered next
        self._tree.usage_moved()
        await self._hooks.run(agent)
        if response.message.tool_calls:
            return await self._resolve(response.message.tool_calls)
        if conversation.inbox or self._hooks.stop is not None:
            return RunAgain()  # injected or signalled messages get an answer; a stop is recorded
        answer = self._outputs.check(agent, response.message)  # typed outputs only
        if isinstance(answer, RunAgain):
            return answer  # it did not validate: the model is told why
        tripped = await self._guardrails.check_output(agent, response.message)
        if tripped is not None:
            return tripped
        return Wait() if params.conversation else answer

    async def _resolve(self, calls: list[ToolCall]) -> Outcome:
        """Steps 4 and 5: every call answered by its own coroutine, results in call order."""
        agent = self._life.agent()
        await list_missing(self._mcp, agent, self._conversation)  # a resumed run may owe MCP calls
        opened = self._calls.open(agent, calls, self._mcp.tools(agent))
        resolve = partial(self._guardrails.around, resolve=self._tool_calls.resolve)
        answers = await asyncio.gather(*(resolve(agent, c) for c in opened))
        for answer in answers:
            self._conversation.append(answer)
        handoff = self._calls.close()
        self._life.set_state(RunState.RUNNING)
        return HandedOff(handoff) if handoff is not None else RunAgain()

    # ------------------------------------------------------------------ signals and updates

    @workflow.signal(name=Signal.TOOL_RESULT)
    def tool_result(self, *payloads: Any) -> None:
        self._intake.signal(payloads, ToolResultSignal)

    @workflow.update(name=Update.SUBMIT_TOOL_RESULT)
    def submit_tool_result(self, payload: Any) -> SubmitResult:
        return self._intake.update(payload, ToolResultSignal)

    @submit_tool_result.validator
    def _validate_tool_result(self, payload: Any) -> None:
        self._intake.validate(payload, ToolResultSignal)

    @workflow.signal(name=Signal.APPROVAL)
    def approval(self, *payloads: Any) -> None:
        self._intake.signal(payloads, ApprovalSignal)

    @workflow.update(name=Update.SUBMIT_APPROVAL)
    def submit_approval(self, payload: Any) -> SubmitResult:
        return self._intake.update(payload, ApprovalSignal)

    @submit_approval.validator
    def _validate_approval(self, payload: Any) -> None:
        self._intake.validate(payload, ApprovalSignal)

    @workflow.signal(name=Signal.USER_MESSAGE)
    def user_message(self, *payloads: Any) -> None:
        self._intake.signal(payloads, UserMessageSignal)

    @workflow.update(name=Update.SUBMIT_USER_MESSAGE)
    def submit_user_message(self, payload: Any) -> SubmitResult:
        return self._intake.update(payload, UserMessageSignal)

    @submit_user_message.validator
    def _validate_user_message(self, payload: Any) -> None:
        self._intake.validate(payload, UserMessageSignal)

    @workflow.update(name=Update.INTERRUPT)
    def interrupt(self, payload: Any) -> SubmitResult:
        return self._intake.interrupt(payload)

    @interrupt.validator
    def _validate_interrupt(self, payload: Any) -> None:
        self._intake.validate(payload, InterruptRequest)

    @workflow.signal(name=Signal.CHILD_REPORT)
    def child_report(self, *payloads: Any) -> None:
        self._intake.child_report(payloads)

    @workflow.signal(name=Signal.BUDGET_EXCEEDED)
    def budget_exceeded(self, *payloads: Any) -> None:
        self._intake.budget_exceeded(payloads)

    # ------------------------------------------------------------------ queries

    @workflow.query(name=Query.STATUS)
    def status(self) -> StatusInfo:
        conversation = self._conversation
        return StatusInfo(
            state=self._life.state,
            agent=conversation.agent,
            turn=conversation.turns,
            usage=self._tree.usage(),
            pending=len(self._tree.pending()),
            messages=conversation.message_count,
            reason=self._life.reason,
        )

    @workflow.query(name=Query.PENDING_TOOL_CALLS)
    def pending_tool_calls(self) -> list[PendingCall]:
        """This run's waiting calls, then its sub-agents' (each naming its run)."""
        return self._tree.pending()

    @workflow.query(name=Query.HISTORY)
    def history(self, query: HistoryQuery | None = None) -> HistoryPage:
        return self._conversation.history(query or HistoryQuery(), self._life.state in ENDED)

    @workflow.query(name=Query.LIVE)
    def live(self, query: LiveQuery) -> LivePage:
        """What observers read (`AgentClient.events`): the stream from an index, with every
        event source. Deltas are not here: readers take them from the live bus while
        `streaming` says a call is in flight (`durable_agent.live`); `deltas` stays empty and
        `next_deltas` echoes the reader's offset."""
        everything = HistoryQuery(
            events=list(EVENT_SOURCES), since=query.items, max_bytes=query.max_bytes
        )
        page = self._conversation.history(everything, self._life.state in ENDED)
        return LivePage(
            items=page.items,
            next_items=page.next,
            deltas=[],
            next_deltas=query.deltas,
            more=page.more,
            state=self._life.state,
            streaming=self._model.streaming,
            done=page.done,
        )

    @workflow.query(name=Query.TRANSCRIPT)
    def transcript(self, query: TranscriptQuery) -> TranscriptPage:
        """Prompt messages for a model or hook activity whose cache missed."""
        return self._conversation.transcript(query)

    @workflow.query(name=Query.SNAPSHOT)
    def snapshot(self) -> Snapshot:
        return self._life.snapshot()
