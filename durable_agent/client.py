"""Drive runs from Python: start, answer waiting calls, read status and history.

Every method maps to one Temporal call a `temporal` CLI user could make by hand; the README
lists those commands next to these methods.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from . import _follow, live
from .activities.attachments import offload, offload_messages
from .wire import (
    AGENT_NAME,
    AGENT_STATUS,
    WORKFLOW_TYPE,
    AgentRunInput,
    AgentRunResult,
    ApprovalSignal,
    Attachment,
    Budget,
    EventSource,
    HistoryPage,
    HistoryQuery,
    InterruptRequest,
    Item,
    LiveEvent,
    LivePage,
    LiveQuery,
    Message,
    PendingCall,
    Query,
    RunState,
    Snapshot,
    StatusInfo,
    SubmitResult,
    ToolResultSignal,
    Update,
    UserMessageSignal,
)
from .worker import DEFAULT_TASK_QUEUE, connect

_T = TypeVar("_T")

UPDATE_ATTEMPTS = 4
"""Attempts of one update (same id) when its RPC fails for a reason worth retrying."""
_TRANSIENT = (
    RPCStatusCode.ABORTED,
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
)


@dataclass(frozen=True)
class SendResult:
    workflow_id: str
    run_id: str
    detail: str
    """The run's answer to the message, e.g. "queued for the next safe point"."""


def _start_attributes(agent: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(AGENT_NAME, agent),
            SearchAttributePair(AGENT_STATUS, RunState.RUNNING.value),
        ]
    )


class AgentClient:
    def __init__(self, client: Client, task_queue: str = DEFAULT_TASK_QUEUE) -> None:
        self.client = client
        self.task_queue = task_queue

    @classmethod
    async def connect(
        cls, task_queue: str = DEFAULT_TASK_QUEUE, **connect_options: Any
    ) -> AgentClient:
        return cls(await connect(**connect_options), task_queue)

    async def start(
        self,
        agent: str | None = None,
        prompt: str | None = None,
        *,
        messages: Sequence[Message] = (),
        workflow_id: str | None = None,
        conversation: bool = False,
        max_turns: int | None = None,
        snapshot: Snapshot | None = None,
        continue_as_new_at_bytes: int | None = None,
        budget: Budget | None = None,
    ) -> WorkflowHandle[Any, AgentRunResult]:
        if agent is None:
            if snapshot is None:
                raise ValueError("give an agent, or a snapshot to resume")
            agent = snapshot.agent
        params = AgentRunInput(
            agent=agent,
            prompt=prompt,
            # Large attachment bytes go to payload storage: the run keeps their reference.
            messages=await offload_messages(self.client.data_converter, messages),
            conversation=conversation,
            max_turns=max_turns,
            snapshot=snapshot,
            continue_as_new_at_bytes=continue_as_new_at_bytes,
            budget=budget,
        )
        return await self.client.start_workflow(
            WORKFLOW_TYPE,
            params,
            id=workflow_id or f"{agent}-{uuid.uuid4().hex[:12]}",
            task_queue=self.task_queue,
            result_type=AgentRunResult,
            search_attributes=_start_attributes(agent),
        )

    def handle(self, workflow_id: str) -> WorkflowHandle[Any, AgentRunResult]:
        return self.client.get_workflow_handle(workflow_id, result_type=AgentRunResult)

    async def find(self, workflow_id: str) -> WorkflowExecutionDescription | None:
        """The run's description (its latest run, open or closed); None when no run has this
        id. Any other failure of the call is raised."""
        try:
            return await self.handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return None
            raise

    @overload
    async def result(self, workflow_id: str) -> AgentRunResult: ...
    @overload
    async def result(self, workflow_id: str, output_type: type[_T]) -> _T: ...
    async def result(self, workflow_id: str, output_type: Any = None) -> Any:
        """The run's result; with `output_type`, its typed answer (`AgentRunResult.output`
        validated as that type; a `ValueError` when the run has none)."""
        result: AgentRunResult = await self.handle(workflow_id).result()
        if output_type is None:
            return result
        if result.output is None:
            raise ValueError(f"run {workflow_id} ended {result.outcome} with no typed output")
        return TypeAdapter(output_type).validate_python(result.output)

    async def status(self, workflow_id: str) -> StatusInfo:
        status: StatusInfo = await self.handle(workflow_id).query(
            Query.STATUS, result_type=StatusInfo
        )
        return status

    async def pending(self, workflow_id: str) -> list[PendingCall]:
        pending: list[PendingCall] = await self.handle(workflow_id).query(
            Query.PENDING_TOOL_CALLS, result_type=list[PendingCall]
        )
        return pending

    async def snapshot(self, workflow_id: str) -> Snapshot:
        snapshot: Snapshot = await self.handle(workflow_id).query(
            Query.SNAPSHOT, result_type=Snapshot
        )
        return snapshot

    async def history(
        self, workflow_id: str, events: Sequence[EventSource] = (), since: int = 0
    ) -> HistoryPage:
        page: HistoryPage = await self.handle(workflow_id).query(
            Query.HISTORY, HistoryQuery(events=list(events), since=since), result_type=HistoryPage
        )
        return page

    async def resolve(
        self,
        workflow_id: str,
        tool_call_id: str,
        content: Any,
        *,
        is_error: bool = False,
        update_id: str | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> SubmitResult:
        """Answer a waiting call through the update, so a refusal comes back as an error. With
        `attachments` (`Image`, `File`) the model sees them with the result."""
        stored = await offload(self.client.data_converter, attachments)
        signal = ToolResultSignal(
            tool_call_id=tool_call_id, content=content, is_error=is_error, attachments=stored
        )
        return await self._answer(workflow_id, Update.SUBMIT_TOOL_RESULT, signal, update_id)

    async def decide(
        self,
        workflow_id: str,
        tool_call_id: str,
        approved: bool,
        reason: str | None = None,
        *,
        digest: str | None = None,
        update_id: str | None = None,
    ) -> SubmitResult:
        """Approve or reject a call. With `digest` (the pending call's), the decision is refused
        unless it was made on the call's exact arguments."""
        signal = ApprovalSignal(
            tool_call_id=tool_call_id, approved=approved, reason=reason, digest=digest
        )
        return await self._answer(workflow_id, Update.SUBMIT_APPROVAL, signal, update_id)

    async def say(
        self,
        workflow_id: str,
        content: str,
        name: str | None = None,
        *,
        update_id: str | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> SubmitResult:
        """Send a user message, with any images and files (`Image`, `File`). Pass the same
        `update_id` when you send it again after an error: the run takes an update id once, so
        the message cannot appear twice."""
        stored = await offload(self.client.data_converter, attachments)
        signal = UserMessageSignal(content=content, name=name, attachments=stored)
        return await self._update(workflow_id, Update.SUBMIT_USER_MESSAGE, signal, update_id)

    async def interrupt(
        self,
        workflow_id: str,
        content: str,
        name: str | None = None,
        *,
        update_id: str | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> SubmitResult:
        """Steer a running turn: cancel the model call in flight (what it had streamed is kept
        as an `interrupted` event, never as the model's message), then answer `content`, with
        any `attachments`, at the safe point. Finished tools are not run again."""
        # Stored before the cut: the call in flight is cancelled only once the message is whole.
        stored = await offload(self.client.data_converter, attachments)
        # The run holds no deltas: what the call had streamed is read from the live bus here.
        partial = await live.streamed_text(self.client, workflow_id) or None
        request = InterruptRequest(content=content, name=name, partial=partial, attachments=stored)
        return await self._update(workflow_id, Update.INTERRUPT, request, update_id)

    async def cancel(self, workflow_id: str) -> None:
        """End a run cleanly: its result says `outcome="cancelled"` and lists the calls that
        were still waiting (`temporal workflow cancel` does the same)."""
        await self.handle(workflow_id).cancel()

    async def send(
        self,
        agent: str,
        content: str,
        *,
        thread_id: str,
        name: str | None = None,
        max_turns: int | None = None,
        update_id: str | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> SendResult:
        """Start the conversation run `thread_id` with this message, or add the message to it
        if it is open: one call (update-with-start), answered once the run has accepted it."""
        params = AgentRunInput(agent=agent, conversation=True, max_turns=max_turns)
        stored = await offload(self.client.data_converter, attachments)
        message = UserMessageSignal(content=content, name=name, attachments=stored)
        update_id = update_id or str(uuid.uuid4())
        for attempt in range(UPDATE_ATTEMPTS):  # an operation is used once: one each
            start: WithStartWorkflowOperation[Any, AgentRunResult] = WithStartWorkflowOperation(
                WORKFLOW_TYPE,
                params,
                id=thread_id,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                task_queue=self.task_queue,
                result_type=AgentRunResult,
                search_attributes=_start_attributes(agent),
            )
            try:
                update = await self.client.start_update_with_start_workflow(
                    Update.SUBMIT_USER_MESSAGE,
                    message,
                    id=update_id,
                    start_workflow_operation=start,
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                    result_type=SubmitResult,
                )
            except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
                transient = not isinstance(exc, RPCError) or exc.status in _TRANSIENT
                if not transient or attempt == UPDATE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            run = await start.workflow_handle()
            outcome: SubmitResult = await update.result()
            return SendResult(
                workflow_id=run.id, run_id=run.first_execution_run_id or "", detail=outcome.detail
            )
        raise AssertionError("unreachable")

    async def live(
        self, workflow_id: str, query: LiveQuery, rpc_timeout: timedelta | None = None
    ) -> LivePage:
        page: LivePage = await self.handle(workflow_id).query(
            Query.LIVE, query, result_type=LivePage, rpc_timeout=rpc_timeout
        )
        return page

    def events(
        self,
        workflow_id: str,
        *,
        after: str | None = None,
        deltas: bool = True,
        poll_interval: float = _follow.LIVE_POLL_INTERVAL,
        wake: asyncio.Event | None = None,
    ) -> AsyncIterator[LiveEvent]:
        """Yield the run's stream from the cursor `after` (a `LiveEvent.id`): messages, status
        events, the model's reply as it streams (`deltas`), state changes; then one `end`.
        Follows continue-as-new (cursors stay valid across runs).

        Reads the run's items with the `live` query, never an update: any number of observers
        leave the run's history and its update limit alone, so approvals never wait behind
        them. While a model call streams, its deltas come from the live bus as they are
        published (`durable_agent.live`) and the items are read every 250 ms; once its end is
        on the bus, every `poll_interval` until its message lands; idle, less often (up to 1 s).
        Setting `wake` ends an idle wait at once (something was just sent to the run: read now).
        Raises ValueError for a malformed cursor and the server's NOT_FOUND `RPCError` for an
        unknown workflow id."""
        return _follow.events(
            self, workflow_id, after=after, deltas=deltas, poll_interval=poll_interval, wake=wake
        )

    async def _answer(
        self,
        workflow_id: str,
        name: str,
        answer: ToolResultSignal | ApprovalSignal,
        update_id: str | None,
    ) -> SubmitResult:
        """Answer a call in the run that waits for it: a run lists its sub-agents' waiting
        calls too (`PendingCall.run`), so a call refused here as not its own is answered in the
        sub-agent's run that owns it."""
        try:
            return await self._update(workflow_id, name, answer, update_id)
        except WorkflowUpdateFailedError:
            owner = next(
                (
                    p.run
                    for p in await self.pending(workflow_id)
                    if p.tool_call_id == answer.tool_call_id
                ),
                None,
            )
            if owner is None or owner == workflow_id:
                raise
            return await self._update(owner, name, answer, update_id)

    async def _update(
        self, workflow_id: str, name: str, payload: Any, update_id: str | None
    ) -> SubmitResult:
        """One update id for every attempt. An update that failed at the RPC level may still
        have been applied (seen in `make faults`: aborted under signal storms); the run takes an
        id once, so retrying with the same id answers with the first outcome instead of
        applying the message again."""
        update_id = update_id or str(uuid.uuid4())
        for attempt in range(UPDATE_ATTEMPTS):
            try:
                result: SubmitResult = await self.handle(workflow_id).execute_update(
                    name, payload, id=update_id, result_type=SubmitResult
                )
                return result
            except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
                transient = not isinstance(exc, RPCError) or exc.status in _TRANSIENT
                if not transient or attempt == UPDATE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def list(self, query: str | None = None) -> AsyncIterator[WorkflowExecution]:
        base = f"WorkflowType = '{WORKFLOW_TYPE}'"
        return self.client.list_workflows(f"{base} AND ({query})" if query else base)

    def follow(
        self,
        workflow_id: str,
        events: Sequence[EventSource] = ("agent", "llm", "tool"),
        poll_interval: float = 0.25,
    ) -> AsyncIterator[Item]:
        """Yield the run's stream as it grows, until the run ends. Queries need a worker: while
        none runs (a run waiting for days), keep polling, more slowly. An unknown workflow id
        raises the server's NOT_FOUND `RPCError` at once."""
        return _follow.follow_history(self, workflow_id, events, poll_interval)
