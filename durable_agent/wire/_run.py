"""Everything `AgentWorkflow` takes and gives: input, output, signals, updates, queries.

These shapes are a wire contract: people send them with the `temporal` CLI. Add optional fields,
never rename or remove one while runs are open. `durable-agent schema` prints their JSON Schema.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, model_validator
from temporalio.common import SearchAttributeKey

from . import limits
from ._activities import TranscriptPage, TranscriptQuery
from ._attachments import Attachment
from ._conversation import (
    AssistantMessage,
    Data,
    EventSource,
    Extensible,
    Item,
    Message,
    StatusEvent,
    ToolMessage,
    Usage,
    render_content,
)
from ._live import LivePage, LiveQuery
from .names import Query, RunState, Signal, Update

AGENT_NAME = SearchAttributeKey.for_keyword("AgentName")
AGENT_STATUS = SearchAttributeKey.for_keyword("AgentStatus")
AGENT_PARENT = SearchAttributeKey.for_keyword("AgentParent")
"""Set on a sub-agent's run: its parent's workflow id (`temporal workflow list --query
"AgentParent='planner-1'"` lists a run's children)."""
AGENT_TOKENS = SearchAttributeKey.for_int("AgentTokens")
"""Tokens used by the run and its sub-agents (input + output), as of the run's last wait, its
end, or at most 10 turns ago (`workflows/index.py`)."""


PendingKind = Literal["external", "long_running", "approval", "handoff"]


def arguments_digest(name: str, arguments: str) -> str:
    """What an approval is bound to: the tool's name and the model's arguments, exactly as the
    approver saw them (sha256, hex)."""
    return hashlib.sha256(f"{name}\n{arguments}".encode()).hexdigest()


class PendingCall(Extensible):
    """A tool call that waits for something from outside the workflow."""

    _new_fields = ("digest", "run")

    tool_call_id: str
    name: str
    arguments: str
    kind: PendingKind
    agent: str
    since: datetime
    deadline: datetime | None = None
    digest: str | None = None
    run: str | None = None
    """Set when the call waits in a sub-agent's run (its workflow id), listed by an ancestor:
    answer it there, or here (`AgentClient` finds the run)."""
    """For an approval: `arguments_digest(name, arguments)`. A decision that carries it is
    refused unless it matches, so the arguments cannot change under the approver."""


class Snapshot(Extensible):
    """The whole state of a conversation: what continue-as-new carries and `export` writes."""

    _new_fields = ("answered",)

    version: Literal[1] = 1
    agent: str
    items: list[Item] = Field(default_factory=list)
    pending: list[PendingCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    turns: int = 0
    inbox: list[Message] = Field(default_factory=list)
    """Messages received but not yet placed (they wait for a safe point)."""
    early_results: dict[str, ToolResultSignal] = Field(default_factory=dict)
    """Results signalled before their call was pending, applied when it is."""
    answered: list[ToolMessage] = Field(default_factory=list)
    """Results of the last response's calls that were already answered while others still
    waited: a resumed run keeps them instead of running or waiting for those calls again."""

    def prefix(self, count: int) -> Snapshot:
        """A fork: the first `count` messages (with the events between them). Calls of the
        kept messages that lack results will be made, or waited for, again in the new run.
        A real cut also winds back the agent speaking, the turns and the usage to that point,
        so a fork of an early point neither hits `max_turns` nor speaks as a later agent."""
        items: list[Item] = []
        seen = 0
        cut = False
        for item in self.items:
            if not isinstance(item, StatusEvent):
                if seen == count:
                    cut = True
                    break
                seen += 1
            items.append(item)
        called = {c.id for i in items if isinstance(i, AssistantMessage) for c in i.tool_calls}
        update: dict[str, Any] = {
            "items": items,
            "pending": [p for p in self.pending if p.tool_call_id in called],
            "answered": [m for m in self.answered if m.tool_call_id in called],
            "inbox": [],
            "early_results": {},
        }
        if cut:
            update.update(_wound_back(items, self.agent))
        return self.model_copy(update=update)


def _wound_back(items: list[Item], agent: str) -> dict[str, Any]:
    """Agent, turns and usage as they were after `items`: each model call records a
    `model_called` event just before the reply it produced."""
    usage, turns, called = Usage(), 0, None
    speaking = next(
        (
            str(i.data["agent"])
            for i in items
            if isinstance(i, StatusEvent) and i.kind == "run_started"
        ),
        agent,
    )
    for item in items:
        if isinstance(item, StatusEvent) and item.kind == "model_called":
            called = item
        elif isinstance(item, AssistantMessage):
            turns += 1
            speaking = item.agent or speaking
            if called is not None:
                tokens = Usage(
                    requests=1,
                    input_tokens=int(called.data.get("input_tokens", 0)),
                    output_tokens=int(called.data.get("output_tokens", 0)),
                )
                usage, called = usage + tokens, None
    return {"agent": speaking, "turns": turns, "usage": usage}


class Budget(Data):
    """A limit on a run and every sub-agent run under it: once reached, no new model call
    starts anywhere in the tree (running tools finish) and the run ends `budget_exceeded`.

    Sub-agents started by one response share what is left of it (`share`), each stopping at
    its own share, so the tree never makes more model calls than `max_model_calls`, whatever
    the timing; a run may pass `max_tokens` by the tokens of the one call that reached it."""

    max_tokens: int | None = Field(default=None, ge=0)
    """Input plus output tokens."""
    max_model_calls: int | None = Field(default=None, ge=0)

    def reached(self, used: Usage) -> str | None:
        """Why the budget is spent, or None."""
        tokens = used.total_tokens
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return f"token budget reached ({tokens} of {self.max_tokens})"
        if self.max_model_calls is not None and used.requests >= self.max_model_calls:
            return f"model call budget reached ({used.requests} of {self.max_model_calls})"
        return None

    def share(self, count: int, index: int) -> Budget:
        """The `index`-th of `count` shares, the remainder going to the first ones: the shares
        add up to this budget exactly, so sub-agents started together cannot overspend it."""

        def part(total: int | None) -> int | None:
            return None if total is None else total // count + (index < total % count)

        return Budget(max_tokens=part(self.max_tokens), max_model_calls=part(self.max_model_calls))

    def left(self, used: Usage) -> Budget:
        """What remains after `used`: a sub-agent's budget when it starts."""
        tokens = used.total_tokens
        return Budget(
            max_tokens=None if self.max_tokens is None else max(0, self.max_tokens - tokens),
            max_model_calls=None
            if self.max_model_calls is None
            else max(0, self.max_model_calls - used.requests),
        )


class AgentRunInput(Extensible):
    """Start a run: `{"agent": "support", "prompt": "..."}` or with `messages`."""

    _new_fields = ("stream_offset", "budget", "output_failures")

    agent: str
    prompt: str | None = None
    messages: list[Message] = Field(default_factory=list)
    max_turns: int | None = Field(default=None, ge=1)
    conversation: bool = False
    """Keep the run open after a final answer and wait for the next `user_message`."""
    snapshot: Snapshot | None = None
    """Resume from a snapshot (continue-as-new, `durable-agent start --from`)."""
    conversation_id: str | None = None
    """Set by continue-as-new only: keeps the model activities' transcript cache valid."""
    transcript_length: int = 0
    """Set by continue-as-new only: how many messages the activity side already has."""
    budget: Budget | None = None
    """A limit for this run and its sub-agents; an agent's own `budget` applies when unset."""
    stream_offset: int = 0
    """Set by continue-as-new only: where the deltas' offsets go on, so observers' cursors
    stay valid across runs."""
    continue_as_new_at_bytes: int | None = Field(default=None, ge=1)
    """Continue as new once the run's history is this large (and always when the server
    suggests it), carrying the whole state over."""
    output_failures: int = Field(default=0, ge=0)
    """Set by continue-as-new only: typed answers in a row that did not validate, so that
    `output_retries` bounds them across runs (left out while 0: older workers read the input)."""

    @model_validator(mode="after")
    def _has_something_to_say(self) -> AgentRunInput:
        empty = self.prompt is None and not self.messages and self.snapshot is None
        if empty and not self.conversation:
            raise ValueError("give 'prompt', 'messages' or 'snapshot' (or 'conversation': true)")
        return self


class CarryOver(Data):
    """What continue-as-new carries from a run into the next. On the wire these are the flat
    `AgentRunInput` fields only continue-as-new sets, so every worker reads the next run's
    input as before; `into` is the one place that maps them."""

    snapshot: Snapshot
    conversation_id: str
    transcript_length: int
    stream_offset: int
    output_failures: int = 0
    """Typed answers in a row that did not validate (`workflows/outputs.py`)."""

    def into(self, started: AgentRunInput) -> AgentRunInput:
        """The next run's input: `started`'s settings, this run's state instead of a prompt."""
        return AgentRunInput(
            agent=started.agent,
            max_turns=started.max_turns,
            conversation=started.conversation,
            budget=started.budget,
            continue_as_new_at_bytes=started.continue_as_new_at_bytes,
            snapshot=self.snapshot,
            conversation_id=self.conversation_id,
            transcript_length=self.transcript_length,
            stream_offset=self.stream_offset,
            output_failures=self.output_failures,
        )


class AgentRunResult(Extensible):
    _new_fields = ("outcome", "pending", "output", "reason")

    final_text: str | None
    messages: list[Message]
    usage: Usage
    turns: int
    agent: str
    """The agent that gave the final answer (after handoffs it may not be the first one)."""
    outcome: Literal[
        "completed", "stopped", "cancelled", "budget_exceeded", "guardrail_tripped"
    ] = "completed"
    """`stopped`: a hook asked the run to stop. `cancelled`: the run was cancelled.
    `budget_exceeded`: its `Budget` (or an ancestor's) was reached. `guardrail_tripped`: an
    input or output guardrail stopped it (`reason` says which and why)."""
    pending: list[PendingCall] = Field(default_factory=list)
    """The calls still waiting when the run was cancelled."""
    output: Any = None
    """With an agent's `output_type`: the final answer as validated, as JSON data
    (`AgentClient.result(..., output_type=)` gives it typed). None for plain text answers."""
    reason: str | None = None
    """Why the run ended so: which guardrail tripped and why (`guardrail_tripped`), the budget
    reached (`budget_exceeded`), a hook's reason (`stopped`). The `status` query says it too."""


class ToolResultSignal(Extensible):
    """Signal `tool_result`: the result of a waiting tool call."""

    _new_fields = ("attachments",)

    tool_call_id: str
    content: Any
    is_error: bool = False
    attachments: list[Attachment] = Field(default_factory=list)
    """Images and files the model sees with the result (large bytes already in payload
    storage: `AgentClient.resolve` puts them there)."""

    def content_text(self) -> str:
        return render_content(self.content)


class ApprovalSignal(Data):
    """Signal `approval`: approve or reject a tool call that needs approval."""

    tool_call_id: str
    approved: bool
    reason: str | None = None
    digest: str | None = None
    """The pending call's `digest`, to bind the decision to the arguments it was made on."""


class UserMessageSignal(Extensible):
    """Signal `user_message`: a message from a person or the application."""

    _new_fields: ClassVar[tuple[str, ...]] = ("attachments",)

    content: str
    name: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    """Images and files the model sees after the text (large bytes already in payload storage:
    `AgentClient.say` puts them there)."""


class InterruptRequest(UserMessageSignal, Extensible):
    """Update `interrupt`: a user message that cuts the model call in flight off. `partial`:
    what that call had streamed, as the interrupter read it from the live bus (the run holds
    no deltas); it becomes the `interrupted` event's text, never a message a model sees."""

    # The parent's new fields too: an interrupt without attachments is read by workers from
    # before them.
    _new_fields = (*UserMessageSignal._new_fields, "partial")
    partial: str | None = None


class ChildReport(Data):
    """Signal `child_report`, from a sub-agent's run to its parent's when what it waits for or
    its usage changed: the parent lists those calls and counts that usage against budgets."""

    run: str
    pending: list[PendingCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)


class BudgetExceededSignal(Data):
    """Signal `budget_exceeded`, from a parent to its running sub-agents: start no new model
    call (passed on down the tree)."""

    reason: str


class SubmitResult(Data):
    """What an update answers when it accepts a submission."""

    accepted: bool = True
    detail: str = ""


class StatusInfo(Extensible):
    """Query `status`."""

    _new_fields = ("reason",)

    state: RunState
    agent: str
    turn: int
    usage: Usage
    pending: int
    messages: int
    reason: str | None = None
    """Why the run ended as it did: the failure's message (`failed`), which guardrail tripped
    and why (`guardrail_tripped`), the budget reached (`budget_exceeded`), a hook's stop
    (`completed`). Left out of the JSON while None, so readers from before it (which refuse
    unknown fields) still read a running run's status; an old reader of an ended run's status
    with a reason must be upgraded (or read `state` from the `AgentStatus` search attribute)."""


class HistoryQuery(Data):
    """Query `history`: messages always; events only from the chosen sources."""

    events: list[EventSource] = Field(default_factory=list)
    since: int = Field(default=0, ge=0)
    """Index into the full stream (messages and events) to start from, for followers."""
    max_bytes: int = Field(default=limits.HISTORY_PAGE_BYTES, ge=1)
    """Page size, so that a long conversation never exceeds a gRPC message (4 MB)."""


class HistoryPage(Data):
    items: list[Item]
    next: int
    """Pass as `since` to get the next page, or only what is new."""
    more: bool = False
    """The page stopped at `max_bytes`: ask again from `next` at once."""
    done: bool
    """The run has ended and this page reaches the end of its stream."""


def dump_json_schemas() -> dict[str, Any]:
    """JSON Schemas of everything a `temporal` CLI user sends or reads: `signal.<name>` and
    `<kind>.<name>.input` are what goes in, `<kind>.<name>` what a query or update answers."""
    signals: dict[Signal, Any] = {
        Signal.TOOL_RESULT: ToolResultSignal,
        Signal.APPROVAL: ApprovalSignal,
        Signal.USER_MESSAGE: UserMessageSignal,
        Signal.CHILD_REPORT: ChildReport,
        Signal.BUDGET_EXCEEDED: BudgetExceededSignal,
    }
    updates: dict[Update, Any] = {
        Update.SUBMIT_TOOL_RESULT: ToolResultSignal,
        Update.SUBMIT_APPROVAL: ApprovalSignal,
        Update.SUBMIT_USER_MESSAGE: UserMessageSignal,
        Update.INTERRUPT: InterruptRequest,
    }
    queries: dict[Query, tuple[Any, Any]] = {  # (input or None, answer)
        Query.STATUS: (None, StatusInfo),
        Query.PENDING_TOOL_CALLS: (None, list[PendingCall]),
        Query.HISTORY: (HistoryQuery, HistoryPage),
        Query.SNAPSHOT: (None, Snapshot),
        Query.TRANSCRIPT: (TranscriptQuery, TranscriptPage),
        Query.LIVE: (LiveQuery, LivePage),
    }
    shapes: dict[str, Any] = {"input": AgentRunInput, "output": AgentRunResult}
    shapes.update({f"signal.{name}": shape for name, shape in signals.items()})
    for update, shape in updates.items():
        shapes[f"update.{update}.input"] = shape
        shapes[f"update.{update}"] = SubmitResult
    for query, (given, answer) in queries.items():
        if given is not None:
            shapes[f"query.{query}.input"] = given
        shapes[f"query.{query}"] = answer
    shapes["snapshot"] = Snapshot
    return {name: TypeAdapter(shape).json_schema() for name, shape in shapes.items()}


Snapshot.model_rebuild()
AgentRunInput.model_rebuild()
