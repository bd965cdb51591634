"""The tree: this run's sub-agent runs, the budget they share, reports up and stops down.

An agent given to another as a tool runs, per call, as a child `AgentWorkflow` with its own
conversation, history and continue-as-new budget. A child's workflow id is its parent's id, the
turn and the tool_call_id, so a retried task or a replay never starts a second child.
Parent-close policy REQUEST_CANCEL: a parent that ends (terminated, failed, timed out) cancels
the children still running, which end cleanly as `cancelled`. Cancellation type TRY_CANCEL: a
cancelled parent ends at once and does not wait for its children to acknowledge.

Reports up: while it runs, a child tells its parent (`child_report` signal) the calls it waits
for and the tokens it has used, one signal at a time, the latest state; the parent lists those
calls and counts that usage against its `Budget`. When a child ends, its result's usage (its
whole subtree's) is added to the parent's, exactly. Stops down: once the tree's usage reaches
the budget, the run that sees it signals `budget_exceeded` to its children (who pass it on),
and every run stops before its next model call. Exact for model calls: the children one
response starts share what is left (`Budget.share`), each stopping at its share, and the parent
makes no call while they run, so the tree never makes more calls than the budget allows.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ChildWorkflowError, FailureError
from temporalio.workflow import ChildWorkflowCancellationType, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from durable_agent.authoring._agent import SubAgent
    from durable_agent.wire import (
        AGENT_NAME,
        AGENT_PARENT,
        AGENT_STATUS,
        WORKFLOW_TYPE,
        AgentRunInput,
        AgentRunResult,
        Budget,
        BudgetExceededSignal,
        ChildReport,
        PendingCall,
        RunState,
        Signal,
        ToolCall,
        Usage,
    )

from .call_book import CallBook
from .conversation import Conversation
from .failures import CALL_FAILED, is_cancelled_exception, reraise_cancellation
from .index import SearchIndex
from .outcomes import BudgetSpent

_Child = workflow.ChildWorkflowHandle[object, AgentRunResult]


class ChildFailed(Exception):
    """A sub-agent's run failed: its reason is the call's error result."""


class Tree:
    def __init__(self, conversation: Conversation, calls: CallBook, index: SearchIndex) -> None:
        self._conversation = conversation
        self._calls = calls
        self._index = index
        self._reports: dict[str, ChildReport] = {}
        """The children that have not ended, as they last reported."""
        self._handles: dict[str, _Child] = {}
        self._reporter: asyncio.Future[None] | None = None
        self._pool: tuple[int, Budget | None] | None = None
        """(turn, what was left) when that turn's first child started: its children share it."""
        self.budget: Budget | None = None
        self.spent: str | None = None
        """Why the tree's budget is spent, once it is: children started later are told at once."""

    def start(self, budget: Budget | None) -> None:
        """A sub-agent's run reports to its parent from now on."""
        self.budget = budget
        parent = workflow.info().parent
        if parent is not None:
            self._reporter = asyncio.ensure_future(self._report_to(parent.workflow_id))

    # ------------------------------------------------------------------ reading

    def usage(self) -> Usage:
        """This run's usage with its running children's (ended ones are in the conversation's)."""
        total = self._conversation.usage
        for report in self._reports.values():
            total = total + report.usage
        return total

    def pending(self) -> list[PendingCall]:
        """This run's waiting calls, then its children's (each naming the run it waits in)."""
        below = [
            p if p.run is not None else p.model_copy(update={"run": run})
            for run, report in self._reports.items()
            for p in report.pending
        ]
        return self._calls.pending() + below

    def left(self) -> Budget | None:
        """What a sub-agent started now may use: the budget less what the tree has used."""
        return None if self.budget is None else self.budget.left(self.usage())

    # ------------------------------------------------------------------ budgets

    def usage_moved(self) -> None:
        """After a model call here or a report from below: once the budget is reached, the
        children still running start no new model call either."""
        reason = None if self.budget is None else self.budget.reached(self.usage())
        if reason is not None:
            self.stop(reason)
        self._index.tokens(self.usage().total_tokens, self._conversation.turns)

    def spent_now(self) -> BudgetSpent | None:
        """Before a model call: is the budget spent (here, above or below)?"""
        reason = self.spent
        if reason is None and self.budget is not None:
            reason = self.budget.reached(self.usage())
        if reason is None:
            return None
        self.stop(reason)
        return BudgetSpent(reason)

    def stop(self, reason: str) -> None:
        """The tree's budget is spent: recorded once, and every running child told."""
        if self.spent is None:
            self.spent = reason
            self._conversation.event("agent", "budget_exceeded", reason=reason)
            for handle in self._handles.values():
                _tell(handle, reason)

    def receive(self, report: ChildReport) -> None:
        if report.run in self._reports:  # a late report of an ended child is dropped
            self._reports[report.run] = report
            self.usage_moved()

    # ------------------------------------------------------------------ children

    @staticmethod
    def child_id(turn: int, tool_call_id: str) -> str:
        """Derived, so a retried task or a replay finds the same child instead of a second."""
        return f"{workflow.info().workflow_id}/{turn}/{tool_call_id}"

    async def run(
        self, sub: SubAgent, call: ToolCall, task: str, turn: int, share: tuple[int, int]
    ) -> AgentRunResult:
        """The child's result; raises `ChildFailed` when it failed, and re-raises the parent's
        own cancellation. `share` is (index, count) among the children its response starts:
        each gets its share of what was left when the first of them started."""
        parent = workflow.info().workflow_id
        child_id = self.child_id(turn, call.id)
        if self._pool is None or self._pool[0] != turn:
            self._pool = (turn, self.left())
        left = self._pool[1]
        budget = None if left is None else left.share(share[1], share[0])
        self._reports[child_id] = ChildReport(run=child_id)
        try:
            handle = await workflow.start_child_workflow(
                WORKFLOW_TYPE,
                AgentRunInput(
                    agent=sub.agent.name, prompt=task, max_turns=sub.max_turns, budget=budget
                ),
                id=child_id,
                task_queue=workflow.info().task_queue,
                result_type=AgentRunResult,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                cancellation_type=ChildWorkflowCancellationType.TRY_CANCEL,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(AGENT_NAME, sub.agent.name),
                        SearchAttributePair(AGENT_STATUS, RunState.RUNNING.value),
                        SearchAttributePair(AGENT_PARENT, parent),
                    ]
                ),
            )
            self._handles[child_id] = handle
            if self.spent is not None:
                _tell(handle, self.spent)
            result: AgentRunResult = await handle
            return result
        except ChildWorkflowError as exc:
            if is_cancelled_exception(exc):
                raise
            own = exc.cause.message if isinstance(exc.cause, FailureError) else str(exc)
            raise ChildFailed(own) from None  # the child's own failure, not its causes
        finally:
            self._reports.pop(child_id, None)
            self._handles.pop(child_id, None)

    # ------------------------------------------------------------------ reports up

    def report(self) -> ChildReport:
        return ChildReport(
            run=workflow.info().workflow_id, pending=self.pending(), usage=self.usage()
        )

    async def _report_to(self, parent_id: str) -> None:
        """A sub-agent's run tells its parent whenever what it waits for or has used changed:
        one signal at a time, the latest state."""
        parent = workflow.get_external_workflow_handle(parent_id)
        sent = ChildReport(run=workflow.info().workflow_id)

        def changed() -> bool:
            return self.report() != sent

        while True:
            await workflow.wait_condition(changed)
            sent = self.report()
            try:
                await parent.signal(Signal.CHILD_REPORT, sent)
            except CALL_FAILED as exc:  # the parent has ended
                reraise_cancellation(exc)
                return


def _tell(handle: _Child, reason: str) -> None:
    """Fire and forget: a child that has just ended is not there to hear it."""
    told = asyncio.ensure_future(
        handle.signal(Signal.BUDGET_EXCEEDED, BudgetExceededSignal(reason=reason))
    )
    told.add_done_callback(_ignore_failure)


def _ignore_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so it is not logged as never retrieved
