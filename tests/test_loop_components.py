"""The loop's components without a server: intake (every signal and update, typed), the model
call's closed state and its interrupt, the tree's budget (reports up, stops down), the run's
life (its state follows what waits, how it ends, what continue-as-new carries), and `ToolCalls`
answering the calls that need no activity. Each in milliseconds, as `test_call_book.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from durable_agent import Agent
from durable_agent.wire import (
    AgentRunInput,
    ApprovalSignal,
    AssistantMessage,
    Budget,
    BudgetExceededSignal,
    CarryOver,
    ChildReport,
    RunState,
    Snapshot,
    StatusEvent,
    ToolMessage,
    ToolResultSignal,
    Usage,
    UserMessage,
    UserMessageSignal,
)
from durable_agent.workflows.call_book import CallBook, OpenCall
from durable_agent.workflows.conversation import Conversation
from durable_agent.workflows.intake import Intake
from durable_agent.workflows.life import RunLife
from durable_agent.workflows.model_call import Calling, Idle, Interrupted, ModelCall
from durable_agent.workflows.outbox import Outbox
from durable_agent.workflows.outcomes import BudgetSpent, Final, RunAgain, Wait
from durable_agent.workflows.outputs import OutputCheck
from durable_agent.workflows.tool_calls import ToolCalls
from durable_agent.workflows.toolsets import MCPToolsets
from durable_agent.workflows.tree import Tree

from .components import DESK, call, clock, lookup, pending


@dataclass
class FakeIndex:
    """Stands in for `SearchIndex`: records what would be written."""

    statuses: list[RunState] = field(default_factory=list)
    tokens_seen: list[int] = field(default_factory=list)

    def status(self, state: RunState) -> None:
        self.statuses.append(state)

    def tokens(self, total: int, turn: int) -> None:
        self.tokens_seen.append(total)


@dataclass
class FakeHandle:
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Parts:
    conversation: Conversation
    calls: CallBook
    index: FakeIndex
    tree: Tree
    model: ModelCall
    intake: Intake
    life: RunLife
    tool_calls: ToolCalls

    def kinds(self) -> list[str]:
        return [i.kind for i in self.conversation.items if isinstance(i, StatusEvent)]


def parts() -> Parts:
    conversation, calls, index = Conversation(clock), CallBook(), FakeIndex()
    conversation.agent = "desk"
    outbox, mcp = Outbox("wf-1", "conv-1"), MCPToolsets()
    tree = Tree(conversation, calls, index)  # type: ignore[arg-type]
    model = ModelCall(conversation, outbox, mcp)
    life = RunLife(conversation, calls, outbox, index, OutputCheck(conversation))  # type: ignore[arg-type]
    return Parts(
        conversation,
        calls,
        index,
        tree,
        model,
        Intake(conversation, calls, tree, model),
        life,
        ToolCalls(conversation, calls, outbox, mcp, tree),
    )


def opened(p: Parts, *names: str) -> list[OpenCall]:
    return p.calls.open(DESK, [call(f"c{i}", n) for i, n in enumerate(names, 1)])


# ---------------------------------------------------------------------- intake


def test_a_malformed_signal_is_recorded_and_ignored() -> None:
    p = parts()
    p.intake.signal(({"tool_call_id": 3},), ToolResultSignal)
    p.intake.signal((), ApprovalSignal)
    events = [i for i in p.conversation.items if isinstance(i, StatusEvent)]
    assert [(e.kind, e.data["signal"]) for e in events] == [
        ("signal_ignored", "ToolResultSignal"),
        ("signal_ignored", "ApprovalSignal"),
    ]
    assert "expected one JSON input, got 0" in events[1].data["reason"]


def test_a_result_signal_for_a_waiting_call_is_applied_once() -> None:
    p = parts()
    (export,) = opened(p, "ask_manager")
    p.calls.start_wait(export, pending(export, "external"))
    p.intake.signal(({"tool_call_id": "c1", "content": "yes"},), ToolResultSignal)
    p.intake.signal(({"tool_call_id": "c1", "content": "again"},), ToolResultSignal)
    assert export.result is not None and export.result.content == "yes"
    assert p.kinds() == ["result_received", "signal_ignored"]


def test_an_update_is_refused_by_its_validator_with_the_signals_rule() -> None:
    p = parts()
    opened(p, "lookup")
    with pytest.raises(ValueError, match="does not take a result signal"):
        p.intake.validate({"tool_call_id": "c1", "content": "x"}, ToolResultSignal)
    with pytest.raises(ValueError, match="malformed ApprovalSignal"):
        p.intake.validate({"tool_call_id": "c1"}, ApprovalSignal)
    assert p.kinds() == [], "a refused update leaves nothing in the run"


def test_an_approval_update_answers_what_it_did() -> None:
    p = parts()
    (refund,) = opened(p, "refund")
    p.calls.start_wait(refund, pending(refund, "approval"))
    answer = p.intake.update({"tool_call_id": "c1", "approved": False}, ApprovalSignal)
    assert (answer.accepted, answer.detail) == (True, "rejected")
    assert refund.decision == ApprovalSignal(tool_call_id="c1", approved=False)


def test_a_user_message_answers_a_waiting_handoff_else_waits_for_a_safe_point() -> None:
    p = parts()
    queued = p.intake.update({"content": "hello"}, UserMessageSignal)
    assert queued.detail == "queued for the next safe point"
    (handoff,) = opened(p, "transfer_to_manager")
    p.calls.start_wait(handoff, pending(handoff, "handoff"))
    assert p.intake.update({"content": "I'm here"}, UserMessageSignal).detail == (
        "answers the handoff"
    )
    assert p.conversation.inbox == [UserMessage(content="hello"), UserMessage(content="I'm here")]


def test_an_interrupt_cuts_off_the_model_call_in_flight_only() -> None:
    p = parts()
    idle = p.intake.interrupt({"content": "stop, do this instead"})
    assert idle.detail == "queued for the next safe point"
    handle = FakeHandle()
    p.model.state = Calling(handle)  # type: ignore[arg-type]
    cut = p.intake.interrupt({"content": "and this"})
    assert cut.detail == "model call interrupted; the message is answered next"
    assert handle.cancelled and isinstance(p.model.state, Interrupted)
    received = [i.data["cut"] for i in p.conversation.items if isinstance(i, StatusEvent)]
    assert received == [False, True]


def test_signals_between_runs_are_taken_when_well_formed_and_dropped_otherwise() -> None:
    p = parts()
    p.intake.budget_exceeded(({"nope": 1},))
    p.intake.child_report(())
    assert p.tree.spent is None and p.kinds() == []
    p.intake.budget_exceeded((BudgetExceededSignal(reason="spent above").model_dump(),))
    assert p.tree.spent == "spent above"
    assert p.kinds() == ["budget_exceeded"]


# ---------------------------------------------------------------------- the model call


def test_the_model_call_is_idle_until_it_calls_and_an_idle_one_is_not_interrupted() -> None:
    p = parts()
    assert isinstance(p.model.state, Idle) and not p.model.calling
    assert p.model.interrupt() is False
    assert isinstance(p.model.state, Idle)


# ---------------------------------------------------------------------- the tree


def test_the_budget_is_spent_once_and_stops_the_run_before_its_next_call() -> None:
    p = parts()
    p.tree.budget = Budget(max_model_calls=2)
    p.conversation.usage = Usage(requests=1, input_tokens=10, output_tokens=5)
    p.tree.usage_moved()
    assert p.tree.spent_now() is None
    assert p.index.tokens_seen == [15]
    p.conversation.usage = p.conversation.usage + Usage(requests=1)
    p.tree.usage_moved()
    assert p.tree.spent_now() == BudgetSpent("model call budget reached (2 of 2)")
    p.tree.stop("again")
    assert p.kinds() == ["budget_exceeded"], "recorded once"
    assert p.tree.left() == Budget(max_model_calls=0)


def test_a_report_from_a_run_that_is_not_a_running_child_is_dropped() -> None:
    p = parts()
    p.tree.budget = Budget(max_tokens=10)
    p.tree.receive(ChildReport(run="wf-1/1/c9", usage=Usage(input_tokens=50)))
    assert p.tree.usage() == Usage() and p.tree.spent is None


def test_a_childs_waiting_calls_are_listed_after_the_runs_own() -> None:
    p = parts()
    (board,) = opened(p, "ask_board")
    own = pending(board, "approval")
    p.calls.start_wait(board, own)
    child = own.model_copy(update={"tool_call_id": "k1"})
    p.tree._reports["wf-1/1/c2"] = ChildReport(run="wf-1/1/c2")
    p.tree.receive(ChildReport(run="wf-1/1/c2", pending=[child], usage=Usage(requests=1)))
    assert p.tree.pending() == [own, child.model_copy(update={"run": "wf-1/1/c2"})]
    assert p.tree.usage() == Usage(requests=1)


# ---------------------------------------------------------------------- the run's life


@pytest.mark.parametrize(
    ("tool", "kind", "state"),
    [
        ("ask_manager", "external", RunState.WAITING_FOR_TOOLS),
        ("refund", "approval", RunState.WAITING_FOR_APPROVAL),
        ("transfer_to_manager", "handoff", RunState.WAITING_FOR_USER),
    ],
)
def test_the_state_follows_what_waits_at_the_moment_it_changes(
    tool: str, kind: Any, state: RunState
) -> None:
    p = parts()
    (waiting,) = opened(p, tool)
    p.calls.start_wait(waiting, pending(waiting, kind))
    assert p.life.state is state
    p.calls.end_wait(waiting)
    assert p.life.state is RunState.RUNNING
    assert p.index.statuses == [state, RunState.RUNNING]


def test_an_activity_tool_never_moves_the_state() -> None:
    p = parts()
    (lookup,) = opened(p, "lookup")
    lookup.proceed()
    lookup.resolve()
    assert (p.life.state, p.index.statuses) == (RunState.RUNNING, [])


def test_a_cancelled_run_ends_once_with_its_waiting_calls() -> None:
    p = parts()
    (board,) = opened(p, "ask_board")
    p.calls.start_wait(board, pending(board, "approval"))
    result = p.life.cancelled()
    assert (result.outcome, [c.tool_call_id for c in result.pending]) == ("cancelled", ["c1"])
    assert p.life.state is RunState.CANCELLED
    assert p.kinds()[-1] == "cancelled"


@pytest.mark.parametrize(
    ("conversation", "ends_in_answer", "expected"),
    [(False, True, Final()), (True, True, Wait()), (False, False, RunAgain())],
)
def test_a_resumed_run_keeps_an_answer_it_already_has(
    conversation: bool, ends_in_answer: bool, expected: object
) -> None:
    p = parts()
    p.conversation.append(UserMessage(content="hi"))
    if ends_in_answer:
        p.conversation.append(AssistantMessage(content="done", agent="desk"))
    params = AgentRunInput(agent="desk", snapshot=Snapshot(agent="desk"), conversation=conversation)
    assert p.life.resumed(params) == expected


def test_carry_over_keeps_every_setting_and_replaces_what_the_run_said() -> None:
    """A field added to AgentRunInput must be carried (or reset) on purpose: this fails until
    `CarryOver.into` names it."""
    started = AgentRunInput(
        agent="desk",
        prompt="hi",
        max_turns=7,
        conversation=True,
        budget=Budget(max_tokens=100),
        continue_as_new_at_bytes=4096,
    )
    carried = CarryOver(
        snapshot=Snapshot(agent="billing"),
        conversation_id="conv-1",
        transcript_length=4,
        stream_offset=12,
        output_failures=2,
    ).into(started)
    settings = {"agent", "max_turns", "conversation", "budget", "continue_as_new_at_bytes"}
    said = {"prompt", "messages"}
    assert set(AgentRunInput.model_fields) == settings | said | set(CarryOver.model_fields)
    for name in settings:
        assert getattr(carried, name) == getattr(started, name)
    assert (carried.prompt, carried.messages) == (None, [])
    assert (carried.conversation_id, carried.transcript_length, carried.stream_offset) == (
        "conv-1",
        4,
        12,
    )
    assert carried.output_failures == 2


# ---------------------------------------------------------------------- tool calls


async def test_calls_answered_at_once_need_no_activity() -> None:
    p = parts()
    unknown, first, second = p.calls.open(
        DESK,
        [
            call("c1", "no_such_tool"),
            call("c2", "transfer_to_billing"),
            call("c3", "transfer_to_billing"),
        ],
    )
    answers = [await p.tool_calls.resolve(DESK, c) for c in (unknown, first, second)]
    assert answers[0].is_error and "unknown tool 'no_such_tool'" in answers[0].content
    assert (answers[1].is_error, answers[1].content) == (False, "Transferred to billing.")
    assert answers[2].is_error, "only one handoff per response"
    assert p.calls.close() == "billing"


async def test_bad_arguments_go_back_to_the_model() -> None:
    p = parts()
    (lookup,) = p.calls.open(DESK, [call("c1", "lookup", '{"order": 5}')])
    answer = await p.tool_calls.resolve(DESK, lookup)
    assert answer.is_error and answer.content.endswith("Fix the arguments and call lookup again.")
    assert p.kinds() == ["tool_failed"]


@pytest.mark.parametrize(
    ("budget", "count"),
    [
        (Budget(max_model_calls=3), 3),
        (Budget(max_model_calls=5, max_tokens=1000), 3),
        (Budget(max_model_calls=1), 4),
        (Budget(max_tokens=7), 2),
    ],
)
def test_children_started_together_share_the_budget_exactly(budget: Budget, count: int) -> None:
    shares = [budget.share(count, i) for i in range(count)]
    for field_name in ("max_model_calls", "max_tokens"):
        parts = [getattr(s, field_name) for s in shares]
        total = getattr(budget, field_name)
        assert parts == [None] * count if total is None else sum(parts) == total, field_name
        if total is not None:
            assert max(parts) - min(parts) <= 1, "as even as it gets, the first ones first"


def test_the_sub_agent_calls_of_a_response_are_numbered_for_their_shares() -> None:
    p = parts()
    p.calls.answered = {"c2": ToolMessage(tool_call_id="c2", content="carried over")}
    helper = Agent("helper", model="openai:gpt-4.1")
    team = Agent("team", model="openai:gpt-4.1", tools=[lookup, helper.as_tool()])
    names = ["helper", "helper", "lookup", "helper"]
    opened_calls = p.calls.open(team, [call(f"c{i}", n) for i, n in enumerate(names, 1)])
    assert [c.share for c in opened_calls] == [(0, 2), (0, 1), (0, 1), (1, 2)]
