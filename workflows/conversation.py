"""A run's conversation: the stream of messages and status events, the inbox of messages that
wait for a safe point, and the pages readers query. Plain Python: the workflow lends it a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models.
    from durable_agent.wire import (
        AgentRunResult,
        AssistantMessage,
        EventKind,
        EventSource,
        HistoryPage,
        HistoryQuery,
        Item,
        Message,
        PendingCall,
        Snapshot,
        StatusEvent,
        ToolCall,
        ToolMessage,
        ToolResultSignal,
        TranscriptPage,
        TranscriptQuery,
        Usage,
        prompt_messages,
    )


class Conversation:
    """Everything a run has said and seen, in order. Messages are what a model reads; events
    share the stream so readers see one timeline, and never reach a model."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self.agent = ""
        """The agent that speaks next: handoffs change it."""
        self.items: list[Item] = []
        self.inbox: list[Message] = []
        """Messages that arrived while tool calls were open; placed at the next safe point."""
        self.usage = Usage()
        self.turns = 0
        self.stop_reason: str | None = None
        """Set by a hook that asked the run to stop; the run stops at the next safe point."""
        self._messages = 0

    # ------------------------------------------------------------------ writing

    def append(self, message: Message) -> int:
        """Add a message; its index among the messages (what a model call counts)."""
        self.items.append(message)
        self._messages += 1
        return self._messages - 1

    def event(self, source: EventSource, kind: EventKind, /, **data: Any) -> None:
        self.items.append(StatusEvent(source=source, kind=kind, at=self._now(), data=data))

    def events(self, events: Iterable[StatusEvent]) -> None:
        self.items.extend(events)

    def receive(self, message: Message) -> None:
        self.inbox.append(message)

    def place_inbox(self) -> None:
        """The safe point: every tool call so far has its result, so messages can go in."""
        for message in self.inbox:
            self.append(message)
        self.inbox = []

    def restore(self, snapshot: Snapshot) -> None:
        """Continue from a snapshot; messages that arrived before it was restored stay last."""
        self.agent = snapshot.agent
        self.items = list(snapshot.items)
        self._messages = len(prompt_messages(self.items))
        self.usage = snapshot.usage
        self.turns = snapshot.turns
        self.inbox = list(snapshot.inbox) + self.inbox

    # ------------------------------------------------------------------ reading

    @property
    def message_count(self) -> int:
        return self._messages

    def prompt(self) -> list[Message]:
        return prompt_messages(self.items)

    def answered(self, tool_call_id: str) -> bool:
        return any(
            isinstance(m, ToolMessage) and m.tool_call_id == tool_call_id for m in self.items
        )

    def open_calls(self) -> list[ToolCall]:
        """The last response's calls that lack results: what a resumed snapshot still owes."""
        last = next((m for m in reversed(self.items) if isinstance(m, AssistantMessage)), None)
        if last is None or not last.tool_calls:
            return []
        answered = {m.tool_call_id for m in self.items if isinstance(m, ToolMessage)}
        return [c for c in last.tool_calls if c.id not in answered]

    def ends_in_answer(self) -> bool:
        """The last message is the model's answer without tool calls."""
        last = next((i for i in reversed(self.items) if not isinstance(i, StatusEvent)), None)
        return isinstance(last, AssistantMessage) and not last.tool_calls

    def history(self, query: HistoryQuery, ended: bool) -> HistoryPage:
        """A page of the stream from `query.since` (an index into messages and events alike),
        with events only from the chosen sources, at most `query.max_bytes` long."""
        sources = set(query.events)
        items: list[Item] = []
        size, index = 0, query.since
        while index < len(self.items):
            item = self.items[index]
            if not isinstance(item, StatusEvent) or item.source in sources:
                size += len(item.model_dump_json())
                if items and size > query.max_bytes:
                    break
                items.append(item)
            index += 1
        more = index < len(self.items)
        return HistoryPage(items=items, next=index, more=more, done=ended and not more)

    def transcript(self, query: TranscriptQuery) -> TranscriptPage:
        """Prompt messages for a model or hook activity whose cache missed."""
        messages = self.prompt()[: query.end]
        page: list[Message] = []
        size, index = 0, query.start
        while index < len(messages):
            size += len(messages[index].model_dump_json())
            if page and size > query.max_bytes:
                break
            page.append(messages[index])
            index += 1
        return TranscriptPage(messages=page, next=index)

    def snapshot(
        self,
        pending: list[PendingCall],
        early_results: dict[str, ToolResultSignal],
        answered: list[ToolMessage],
    ) -> Snapshot:
        return Snapshot(
            agent=self.agent,
            items=self.items,
            pending=pending,
            usage=self.usage,
            turns=self.turns,
            inbox=self.inbox,
            early_results=early_results,
            answered=answered,
        )

    def result(
        self,
        outcome: Literal[
            "completed", "stopped", "cancelled", "budget_exceeded", "guardrail_tripped"
        ] = "completed",
        pending: list[PendingCall] | None = None,
    ) -> AgentRunResult:
        messages = self.prompt()
        final = next(
            (
                m.content
                for m in reversed(messages)
                if isinstance(m, AssistantMessage) and m.content
            ),
            None,
        )
        return AgentRunResult(
            final_text=final,
            messages=messages,
            usage=self.usage,
            turns=self.turns,
            agent=self.agent,
            outcome=outcome,
            pending=pending or [],
        )
