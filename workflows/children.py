"""Sub-agents: an agent given to another as a tool runs, per call, as a child `AgentWorkflow`
with its own conversation, history and continue-as-new budget.

A child's workflow id is its parent's id, the turn and the tool_call_id, so a retried task or a
replay never starts a second child. Parent-close policy REQUEST_CANCEL: a parent that ends
(terminated, failed, timed out) cancels the children still running, which end cleanly as
`cancelled`; the parent never leaves one running on its own. Cancellation type TRY_CANCEL: a
cancelled parent ends at once and does not wait for its children to acknowledge.

While it runs, a child reports to its parent (`child_report` signal) the calls it waits for and
the tokens it has used, so the parent lists those calls and counts that usage against budgets;
when it ends, its result's usage (its whole subtree's) is added to the parent's, exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ChildWorkflowError, FailureError
from temporalio.workflow import ChildWorkflowCancellationType, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from durable_agent._agent import SubAgent
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

from .failures import is_cancelled_exception


class ChildFailed(Exception):
    """A sub-agent's run failed: its reason is the call's error result."""


class Children:
    """The sub-agent runs of this run that have not ended, as they last reported."""

    def __init__(self, changed: Callable[[], None]) -> None:
        """`changed` is told when a report arrives (pending calls or usage moved)."""
        self._reports: dict[str, ChildReport] = {}
        self._handles: dict[str, workflow.ChildWorkflowHandle[object, AgentRunResult]] = {}
        self._changed = changed
        self.stop_reason: str | None = None
        """Set once the tree's budget is spent: children started later are told at once."""

    def pending(self) -> list[PendingCall]:
        """What the children (and theirs) wait for, each naming the run it waits in."""
        return [
            p if p.run is not None else p.model_copy(update={"run": run})
            for run, report in self._reports.items()
            for p in report.pending
        ]

    def usage(self) -> Usage:
        """What the running children have used so far (their subtrees included)."""
        total = Usage()
        for report in self._reports.values():
            total = total + report.usage
        return total

    def receive(self, report: ChildReport) -> None:
        if report.run in self._reports:  # a late report of an ended child is dropped
            self._reports[report.run] = report
            self._changed()

    def stop(self, reason: str) -> None:
        """The tree's budget is spent: tell every running child (they pass it on)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            for handle in self._handles.values():
                self._tell(handle, reason)

    @staticmethod
    def child_id(turn: int, tool_call_id: str) -> str:
        """Derived, so a retried task or a replay finds the same child instead of a second."""
        return f"{workflow.info().workflow_id}/{turn}/{tool_call_id}"

    async def run(
        self, sub: SubAgent, call: ToolCall, task: str, turn: int, budget: Budget | None
    ) -> AgentRunResult:
        """The child's result; raises `ChildFailed` when it failed, and re-raises the parent's
        own cancellation."""
        parent = workflow.info().workflow_id
        child_id = self.child_id(turn, call.id)
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
            if self.stop_reason is not None:
                self._tell(handle, self.stop_reason)
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

    @staticmethod
    def _tell(handle: workflow.ChildWorkflowHandle[object, AgentRunResult], reason: str) -> None:
        """Fire and forget: a child that has just ended is not there to hear it."""
        told = asyncio.ensure_future(
            handle.signal(Signal.BUDGET_EXCEEDED, BudgetExceededSignal(reason=reason))
        )
        told.add_done_callback(_ignore_failure)


def _ignore_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so it is not logged as never retrieved
