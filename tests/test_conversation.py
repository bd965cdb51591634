"""The conversation without a server: the stream, the inbox and its safe point, snapshots, and
the pages the `history` and `transcript` queries answer."""

from __future__ import annotations

import pytest

from durable_agent.wire import (
    AssistantMessage,
    EventSource,
    HistoryQuery,
    Item,
    PendingCall,
    Snapshot,
    StatusEvent,
    ToolResultSignal,
    TranscriptQuery,
    Usage,
)
from durable_agent.workflows.conversation import Conversation

from .components import NOW, answer, asks, call, clock, status, user


def chat(*items: Item) -> Conversation:
    conversation = Conversation(clock)
    conversation.agent = "desk"
    for item in items:
        if isinstance(item, StatusEvent):
            conversation.events([item])
        else:
            conversation.append(item)
    return conversation


# A stream of 4 messages and 4 events, one event of each source and a trailing one.
STREAM: list[Item] = [
    user("hi"),
    status("llm", "model_called"),
    asks(call("c1", "lookup")),
    status("tool", "tool_started"),
    answer("c1", "found"),
    status("agent", "turn_started"),
    AssistantMessage(content="done", agent="desk"),
    status("tool", "tool_finished"),
]


def test_append_returns_the_index_among_messages_only() -> None:
    conversation = Conversation(clock)
    assert conversation.append(user("a")) == 0
    conversation.event("agent", "turn_started", turn=1)
    assert conversation.append(AssistantMessage(content="b")) == 1
    assert conversation.message_count == 2
    assert conversation.prompt() == [user("a"), AssistantMessage(content="b")]
    [event] = [i for i in conversation.items if isinstance(i, StatusEvent)]
    assert (event.source, event.kind, event.at, event.data) == (
        "agent",
        "turn_started",
        NOW,
        {"turn": 1},
    )


def test_received_messages_wait_for_the_safe_point() -> None:
    conversation = chat(user("go"), asks(call("c1", "lookup")))
    conversation.receive(user("also this"))
    conversation.receive(user("and this"))
    assert conversation.prompt() == [user("go"), asks(call("c1", "lookup"))]
    conversation.append(answer("c1", "found"))
    conversation.place_inbox()
    assert conversation.inbox == []
    assert [m.content for m in conversation.prompt()][2:] == ["found", "also this", "and this"]
    assert conversation.append(user("next")) == 5


def test_restore_keeps_messages_received_before_it_last() -> None:
    source = chat(*STREAM)
    source.usage, source.turns = Usage(requests=2, input_tokens=10), 2
    source.receive(user("carried"))
    snapshot = source.snapshot([], {}, [])
    restored = Conversation(clock)
    restored.receive(user("arrived first"))
    restored.restore(snapshot)
    assert restored.items == STREAM
    assert (restored.agent, restored.usage, restored.turns) == ("desk", source.usage, 2)
    assert restored.message_count == 4
    assert [m.content for m in restored.inbox] == ["carried", "arrived first"]
    assert restored.append(user("next")) == 4


def test_snapshot_carries_what_the_open_response_owes() -> None:
    conversation = chat(user("go"), asks(call("c1", "ask_manager"), call("c2", "lookup")))
    conversation.receive(user("waiting"))
    waiting = PendingCall(
        tool_call_id="c1",
        name="ask_manager",
        arguments="{}",
        kind="external",
        agent="desk",
        since=NOW,
    )
    early = {"c9": ToolResultSignal(tool_call_id="c9", content="soon")}
    done = [answer("c2", "found")]
    snapshot = conversation.snapshot([waiting], early, done)
    again = Snapshot.model_validate_json(snapshot.model_dump_json())
    assert again == snapshot
    assert (again.pending, again.early_results, again.answered) == ([waiting], early, done)
    assert again.inbox == [user("waiting")]


# ---------------------------------------------------------------------------- history pages


@pytest.mark.parametrize(
    ("sources", "kinds"),
    [
        ([], ["user", "assistant", "tool", "assistant"]),
        (["tool"], ["user", "assistant", "tool_started", "tool", "assistant", "tool_finished"]),
        (["llm", "agent"], ["user", "model_called", "assistant", "tool", "turn_started",
                            "assistant"]),
        (["agent", "llm", "tool"], ["user", "model_called", "assistant", "tool_started", "tool",
                                     "turn_started", "assistant", "tool_finished"]),
    ],
    ids=["messages-only", "tool-events", "llm-and-agent-events", "everything"],
)  # fmt: skip
def test_history_filters_events_by_source_and_keeps_every_message(
    sources: list[EventSource], kinds: list[str]
) -> None:
    page = chat(*STREAM).history(HistoryQuery(events=sources), ended=False)
    assert [i.kind if isinstance(i, StatusEvent) else i.role for i in page.items] == kinds
    assert (page.next, page.more, page.done) == (8, False, False)


def test_since_and_next_index_the_whole_stream() -> None:
    conversation = chat(*STREAM)
    page = conversation.history(HistoryQuery(since=3), ended=False)
    assert page.items == [STREAM[4], STREAM[6]], "events skipped, indices still count them"
    assert page.next == 8
    conversation.append(user("new"))
    follow = conversation.history(HistoryQuery(since=page.next), ended=False)
    assert (follow.items, follow.next) == ([user("new")], 9)
    nothing = conversation.history(HistoryQuery(since=follow.next), ended=True)
    assert (nothing.items, nothing.next, nothing.more, nothing.done) == ([], 9, False, True)


def test_max_bytes_pages_hold_at_least_one_item() -> None:
    conversation = chat(*STREAM)
    events: list[EventSource] = ["agent", "llm", "tool"]
    seen: list[Item] = []
    since, pages = 0, 0
    while True:
        page = conversation.history(HistoryQuery(events=events, since=since, max_bytes=1), True)
        pages += 1
        assert len(page.items) == 1
        seen += page.items
        since = page.next
        assert page.done is not page.more
        if not page.more:
            break
    assert (seen, pages) == (STREAM, 8)


def test_max_bytes_fills_a_page_up_to_the_limit() -> None:
    conversation = chat(*STREAM)
    first_two = sum(len(m.model_dump_json()) for m in (STREAM[0], STREAM[2]))
    page = conversation.history(HistoryQuery(max_bytes=first_two), ended=True)
    # The event after the second message is filtered out: `next` is past it.
    assert (page.items, page.next, page.more, page.done) == ([STREAM[0], STREAM[2]], 4, True, False)
    rest = conversation.history(HistoryQuery(since=page.next), ended=True)
    assert (rest.items, rest.more, rest.done) == ([STREAM[4], STREAM[6]], False, True)


def test_trailing_filtered_events_do_not_mean_more() -> None:
    page = chat(*STREAM[:6]).history(HistoryQuery(since=5), ended=True)
    assert (page.items, page.next, page.more, page.done) == ([], 6, False, True)


# ---------------------------------------------------------------------------- transcript pages


def test_transcript_pages_prompt_messages_up_to_end() -> None:
    conversation = chat(*STREAM)
    whole = conversation.transcript(TranscriptQuery(end=4))
    assert (whole.messages, whole.next) == (conversation.prompt(), 4)
    middle = conversation.transcript(TranscriptQuery(start=1, end=3))
    assert (middle.messages, middle.next) == ([STREAM[2], STREAM[4]], 3)
    one = conversation.transcript(TranscriptQuery(start=1, end=4, max_bytes=1))
    assert (one.messages, one.next) == ([STREAM[2]], 2), "at least one message a page"
    past = conversation.transcript(TranscriptQuery(start=4, end=4))
    assert (past.messages, past.next) == ([], 4)


# ---------------------------------------------------------------------------- calls and result


def test_answered_and_open_calls_of_the_last_response() -> None:
    conversation = chat(user("go"), asks(call("a1", "lookup")), answer("a1", "x"))
    conversation.append(asks(call("b1", "lookup"), call("b2", "ask_manager"), call("b3", "lookup")))
    conversation.append(answer("b2", "y"))
    conversation.event("tool", "waiting")
    assert conversation.answered("a1") and conversation.answered("b2")
    assert not conversation.answered("b1")
    assert [c.id for c in conversation.open_calls()] == ["b1", "b3"]


@pytest.mark.parametrize(
    "items",
    [[], [user("go")], [user("go"), AssistantMessage(content="done")]],
    ids=["empty", "no-response", "final-response"],
)
def test_no_open_calls_without_a_response_that_asked(items: list[Item]) -> None:
    assert chat(*items).open_calls() == []


def test_result_takes_the_last_assistant_text_and_leaves_events_out() -> None:
    conversation = chat(*STREAM)
    conversation.append(asks(call("c2", "lookup")))
    conversation.append(answer("c2", "more"))
    conversation.turns, conversation.usage = 3, Usage(requests=3)
    result = conversation.result()
    assert result.final_text == "done"
    assert result.messages == conversation.prompt() and len(result.messages) == 6
    assert (result.turns, result.usage, result.agent) == (3, Usage(requests=3), "desk")
    assert chat(user("go"), asks(call("c1", "lookup"))).result().final_text is None
