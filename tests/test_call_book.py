"""The call book's rules, without a server: for every kind of call in every phase the loop can
bring it to, what a `tool_result`, an approval or a person's message does. The refusal texts
are what `submit_*` updates answer and `signal_ignored` events record (README "Bad signals")."""

from __future__ import annotations

from typing import NamedTuple, cast

import pytest

from durable_agent.wire import ApprovalSignal, PendingKind, ToolMessage, ToolResultSignal
from durable_agent.workflows.call_book import CallBook, OpenCall, Phase, Route, route_of

from .components import DESK, KINDS, call, pending

NO_RESULT = "tool call c1 ({name}) does not take a result signal"
HAS_RESULT = "tool call c1 already has a result"
NEEDS_APPROVAL = "tool call c1 is waiting for approval, not for a result"
NOT_APPROVAL = "tool call c1 is not waiting for approval"
DECIDED = "tool call c1 was already decided"
BUFFERED, APPLIED, ACCEPTED = "taken, buffered", "taken, applied", None
HANDED_OVER = "Handed over; their reply follows."
AWAITING = {Phase.AWAITING_APPROVAL, Phase.AWAITING_RESULT}


def result(call_id: str = "c1", content: str = "42") -> ToolResultSignal:
    return ToolResultSignal(tool_call_id=call_id, content=content)


def decision(approved: bool, call_id: str = "c1") -> ApprovalSignal:
    return ApprovalSignal(tool_call_id=call_id, approved=approved, reason="policy")


def step(book: CallBook, open_call: OpenCall, action: str) -> None:
    """One of the loop's moves, as `_run_tool`/`_handoff`/`_wait` make them."""
    if action.startswith("wait:"):
        open_call.wait(pending(open_call, cast(PendingKind, action.removeprefix("wait:"))))
    elif action in ("approve", "reject"):
        book.take_approval(decision(action == "approve", open_call.call.id))
    elif action == "result":
        book.take_result(result(open_call.call.id))
    else:
        getattr(open_call, action)()  # proceed, resolve


def opened(kind: str, steps: str = "", book: CallBook | None = None) -> tuple[CallBook, OpenCall]:
    book = book or CallBook()
    [open_call] = book.open(DESK, [call("c1", KINDS[kind][0])])
    for action in steps.split():
        step(book, open_call, action)
    return book, open_call


class Row(NamedTuple):
    kind: str
    steps: str
    """The loop's moves that bring the call to the state under test; its phase names the row."""
    on_result: str | None
    on_decision: str | None
    answers_person: bool = False

    @property
    def phase(self) -> Phase:
        return opened(self.kind, self.steps)[1].phase


# Each row is one state the loop can leave a call in between two signals: every kind of call
# in every phase it can reach (test_the_table_covers_every_reachable_phase).
APPROVED = "wait:approval approve proceed"
ROWS = [
    Row("invocable", "", NO_RESULT, NOT_APPROVAL),
    Row("invocable", "proceed", NO_RESULT, NOT_APPROVAL),
    Row("invocable", "proceed resolve", NO_RESULT, NOT_APPROVAL),
    Row("invocable+approval", "", NO_RESULT, ACCEPTED),
    Row("invocable+approval", "wait:approval", NO_RESULT, ACCEPTED),
    Row("invocable+approval", f"{APPROVED} proceed", NO_RESULT, DECIDED),
    Row("invocable+approval", f"{APPROVED} resolve", NO_RESULT, DECIDED),
    Row("long_running", "", BUFFERED, NOT_APPROVAL),
    Row("long_running", "proceed", BUFFERED, NOT_APPROVAL),
    Row("long_running", "proceed wait:long_running", APPLIED, NOT_APPROVAL),
    Row("long_running", "wait:long_running result resolve", HAS_RESULT, NOT_APPROVAL),
    Row("long_running+approval", "", NEEDS_APPROVAL, ACCEPTED),
    Row("long_running+approval", "wait:approval", NEEDS_APPROVAL, ACCEPTED),
    Row("long_running+approval", f"{APPROVED} proceed", BUFFERED, DECIDED),
    Row("long_running+approval", f"{APPROVED} wait:long_running", APPLIED, DECIDED),
    Row("long_running+approval", f"{APPROVED} resolve", HAS_RESULT, DECIDED),
    Row("external", "", BUFFERED, NOT_APPROVAL),
    Row("external", "wait:external", APPLIED, NOT_APPROVAL),
    Row("external", "wait:external result proceed", HAS_RESULT, NOT_APPROVAL),
    Row("external", "wait:external proceed resolve", HAS_RESULT, NOT_APPROVAL),
    Row("external+approval", "", NEEDS_APPROVAL, ACCEPTED),
    Row("external+approval", "wait:approval", NEEDS_APPROVAL, ACCEPTED),
    Row("external+approval", APPROVED, BUFFERED, DECIDED),
    Row("external+approval", f"{APPROVED} wait:external", APPLIED, DECIDED),
    Row("external+approval", f"{APPROVED} resolve", HAS_RESULT, DECIDED),
    Row("person", "", BUFFERED, NOT_APPROVAL),
    Row("person", "wait:handoff", APPLIED, NOT_APPROVAL, True),
    Row("person", "wait:handoff result proceed", HAS_RESULT, NOT_APPROVAL),
    Row("person", "wait:handoff result proceed resolve", HAS_RESULT, NOT_APPROVAL),
    Row("agent", "", NO_RESULT, NOT_APPROVAL),
    Row("agent", "resolve", NO_RESULT, NOT_APPROVAL),
    Row("unknown", "", NO_RESULT, NOT_APPROVAL),
    Row("unknown", "resolve", NO_RESULT, NOT_APPROVAL),
]
ROW_IDS = [f"{r.kind}-{r.phase}" for r in ROWS]


def test_the_table_covers_every_reachable_phase() -> None:
    covered = {(r.kind, r.phase) for r in ROWS}
    for kind, (_, route, needs_approval) in KINDS.items():
        phases = {Phase.NEW, Phase.RUNNING, Phase.RESOLVED}
        if needs_approval:
            phases.add(Phase.AWAITING_APPROVAL)
        if route.takes_result:
            phases.add(Phase.AWAITING_RESULT)
        if route in (Route.AGENT, Route.UNKNOWN):
            phases = {Phase.NEW, Phase.RESOLVED}  # answered at once
        assert {p for k, p in covered if k == kind} == phases, kind


def never_answered(_: str) -> bool:
    return False


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_tool_result(row: Row) -> None:
    book, open_call = opened(row.kind, row.steps)
    refusal = book.check_result(result(), never_answered)
    if row.on_result in (BUFFERED, APPLIED):
        assert refusal is None
        assert book.take_result(result()) is (row.on_result == BUFFERED)
        assert open_call.result == result()
        assert open_call.ready(), "a buffered result is there when the call waits"
        assert book.check_result(result(), never_answered) == HAS_RESULT
    else:
        assert refusal == str(row.on_result).format(name=KINDS[row.kind][0])


@pytest.mark.parametrize("approved", [True, False], ids=["approve", "reject"])
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_approval(row: Row, approved: bool) -> None:
    book, open_call = opened(row.kind, row.steps)
    assert book.check_approval(decision(approved)) == row.on_decision
    if row.on_decision is ACCEPTED:
        book.take_approval(decision(approved))
        assert open_call.decision == decision(approved)
        assert open_call.ready() is (row.phase is Phase.AWAITING_APPROVAL)
        assert book.check_approval(decision(not approved)) == DECIDED


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_user_message(row: Row) -> None:
    book, open_call = opened(row.kind, row.steps)
    before = open_call.result
    if row.answers_person:
        assert book.answer_handoff() == "c1"
        assert open_call.result == ToolResultSignal(tool_call_id="c1", content=HANDED_OVER)
        assert open_call.ready()
    else:
        assert book.answer_handoff() is None
        assert open_call.result == before


@pytest.mark.parametrize(
    ("answered", "refusal"),
    [(True, HAS_RESULT), (False, "unknown tool_call_id c1: no such call is waiting")],
    ids=["answered-earlier", "never-called"],
)
def test_signals_for_a_call_of_no_open_response(answered: bool, refusal: str) -> None:
    book, _ = opened("external", "wait:external result proceed resolve")
    book.close()
    assert book.check_result(result(), lambda call_id: answered and call_id == "c1") == refusal
    assert book.check_approval(decision(True)) == NOT_APPROVAL
    assert book.answer_handoff() is None


@pytest.mark.parametrize(("name", "route", "needs_approval"), list(KINDS.values()), ids=list(KINDS))
def test_route_of(name: str, route: Route, needs_approval: bool) -> None:
    assert route_of(DESK, call("c1", name)) == (route, needs_approval)
    assert route.takes_result is (route in (Route.LONG_RUNNING, Route.EXTERNAL, Route.PERSON))


def test_early_results_go_only_to_calls_that_take_results() -> None:
    book = CallBook()
    ids = {"e1": "long_running", "e2": "external+approval", "e3": "person", "e4": "invocable"}
    book.early = {i: result(i, f"early {i}") for i in [*ids, "e5"]}
    opened_calls = book.open(DESK, [call(i, KINDS[kind][0]) for i, kind in ids.items()])
    assert [c.result for c in opened_calls] == [
        result("e1", "early e1"),
        result("e2", "early e2"),
        result("e3", "early e3"),
        None,
    ]
    assert set(book.early) == {"e4", "e5"}, "kept for a snapshot, never applied"
    assert book.check_result(result("e1"), never_answered) == "tool call e1 already has a result"
    assert set(book.unapplied_results()) == {"e1", "e2", "e3", "e4", "e5"}


def test_answers_a_snapshot_carried_resolve_their_calls_on_open() -> None:
    book = CallBook()
    carried = ToolMessage(tool_call_id="a1", name="ask_manager", content="yes")
    book.answered = {"a1": carried}
    first, second = book.open(DESK, [call("a1", "ask_manager"), call("a2", "ask_manager")])
    assert (first.phase, first.answer, second.phase) == (Phase.RESOLVED, carried, Phase.NEW)
    assert book.answered == {}, "used once"
    assert book.check_result(result("a1"), never_answered) == "tool call a1 already has a result"
    second.wait(pending(second, "external"))
    second.resolve()
    assert book.answers() == [carried], "a call resolved without an answer adds none"


def test_one_handoff_to_an_agent_per_response_first_wins() -> None:
    book = CallBook()
    book.open(DESK, [call("h1", "transfer_to_billing"), call("h2", "transfer_to_billing")])
    assert book.claim_handoff("billing") is True
    assert book.claim_handoff("other") is False
    assert book.close() == "billing"
    book.open(DESK, [call("h3", "transfer_to_billing")])
    assert book.close() is None, "a new response starts without a claim"
    book.open(DESK, [call("h4", "transfer_to_billing")])
    assert book.claim_handoff("billing") is True, "open resets the claim"


@pytest.mark.parametrize(
    ("kind", "started"),
    [("long_running", True), ("external", True), ("approval", False), ("handoff", False)],
)
def test_was_waiting_only_for_started_calls_and_only_once(kind: PendingKind, started: bool) -> None:
    book = CallBook()
    book.resumed = {"c1": kind}
    assert book.was_waiting("c2") is False
    assert book.was_waiting("c1") is started
    assert book.was_waiting("c1") is False
    assert book.resumed == {}


def test_pending_waiting_kinds_and_unapplied_results() -> None:
    book = CallBook()
    kinds = ["invocable+approval", "long_running", "external", "person", "invocable"]
    calls = book.open(DESK, [call(f"c{i}", KINDS[k][0]) for i, k in enumerate(kinds)])
    assert book.pending() == [] and book.waiting_kinds() == set()
    waits: list[PendingKind] = ["approval", "long_running", "external", "handoff"]
    for open_call, kind in zip(calls, waits, strict=False):
        open_call.wait(pending(open_call, kind))
    assert [p.tool_call_id for p in book.pending()] == ["c0", "c1", "c2", "c3"]
    assert book.waiting_kinds() == {"approval", "long_running", "external", "handoff"}
    book.take_result(result("c1"))
    calls[1].proceed()
    book.take_result(result("c2"))
    calls[2].proceed()
    calls[2].resolve()
    assert book.waiting_kinds() == {"approval", "handoff"}
    assert book.unapplied_results() == {"c1": result("c1")}, "a resolved call's is in the chat"
    book.close()
    assert book.pending() == [] and book.unapplied_results() == {}


@pytest.mark.parametrize(
    "steps",
    [
        "wait:approval approve proceed proceed resolve",
        "wait:approval reject proceed resolve",
        "wait:approval approve proceed proceed wait:long_running result proceed resolve",
        "wait:approval approve proceed wait:external result proceed resolve",
        "wait:handoff result proceed resolve",
        "wait:external proceed resolve",
        "proceed resolve",
        "resolve",
    ],
)
def test_pending_is_set_exactly_while_awaiting(steps: str) -> None:
    book, open_call = opened("long_running+approval")
    for action in steps.split():
        step(book, open_call, action)
        assert (open_call.pending is not None) is (open_call.phase in AWAITING), action
        assert book.pending() == ([open_call.pending] if open_call.pending else [])
        if open_call.pending is not None:
            awaits_approval = open_call.pending.kind == "approval"
            assert awaits_approval is (open_call.phase is Phase.AWAITING_APPROVAL)
    assert open_call.phase is Phase.RESOLVED


# ---------------------------------------------------------------------------- bugs found here
# Regressions: each was found by these tests and fixed in the call book.


@pytest.mark.parametrize(
    ("kind", "waiting"),
    [("long_running+approval", "long_running"), ("external+approval", "external")],
)
def test_resumed_approved_call_takes_its_result(kind: str, waiting: PendingKind) -> None:
    book = CallBook()
    book.resumed = {"c1": waiting}
    _, open_call = opened(kind, book=book)
    assert book.check_result(result(), never_answered) is None  # before its coroutine runs
    assert book.was_waiting("c1")
    open_call.wait(pending(open_call, waiting))
    assert book.check_result(result(), never_answered) is None
    assert book.check_approval(decision(True)) == NOT_APPROVAL


def test_result_for_a_rejected_call_is_refused() -> None:
    book, _ = opened("long_running+approval", "wait:approval reject")
    refusal = book.check_result(result(), never_answered)
    assert refusal is not None and "c1" in refusal


def test_result_after_approval_before_the_call_waits_is_buffered() -> None:
    book, _ = opened("long_running+approval", "wait:approval approve")
    assert book.check_result(result(), never_answered) is None
    assert book.take_result(result()) is True


def test_person_message_does_not_overwrite_a_signalled_result() -> None:
    book, open_call = opened("person", "wait:handoff result")
    assert book.answer_handoff() is None
    assert open_call.result == result()


def test_second_person_message_answers_the_next_handoff() -> None:
    book = CallBook()
    first, second = book.open(DESK, [call(i, "transfer_to_manager") for i in ("h1", "h2")])
    first.wait(pending(first, "handoff"))
    second.wait(pending(second, "handoff"))
    assert book.answer_handoff() == "h1"
    assert book.answer_handoff() == "h2"


def test_a_decision_with_another_digest_is_refused() -> None:
    book, open_call = opened("invocable+approval", "wait:approval")
    other = ApprovalSignal(tool_call_id="c1", approved=True, digest="0" * 64)
    refusal = book.check_approval(other)
    assert refusal is not None and "made on other arguments" in refusal
    same = ApprovalSignal(tool_call_id="c1", approved=True, digest=open_call.digest)
    assert book.check_approval(same) is None
    assert book.check_approval(decision(True)) is None  # a decision without a digest is taken
