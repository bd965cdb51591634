"""The model activity's side of the conversation, so each model call carries only what is new.

The workflow sends the messages since its previous model call plus a `TranscriptRef`; this
cache holds the rest per run. Tool results travel the same way: a tool activity keeps its
result here under a fresh ref, and the next model call names the ref instead of carrying the
content again. On a miss (another worker, a restart, an evicted entry, a stale attempt) the
activity asks the workflow itself with the `transcript` query; a local activity, which cannot
query the run it holds open, says so and the workflow sends the conversation whole.
Correctness never depends on the cache, only speed does.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from durable_agent.wire import (
    TRANSCRIPT_MISS,
    WINDOW_MISS,
    AssistantMessage,
    Message,
    ModelRequest,
    TranscriptPage,
    TranscriptQuery,
    TranscriptRef,
    windowed,
)
from durable_agent.wire.limits import REF_MIN_CHARS

__all__ = ["REF_MIN_CHARS", "TranscriptCache"]

_Key = tuple[str, str]


class TranscriptCache:
    def __init__(self, max_runs: int = 256, max_result_chars: int = 64 * 1024 * 1024) -> None:
        self._runs: OrderedDict[_Key, list[Message]] = OrderedDict()
        self._summaries: OrderedDict[_Key, tuple[int, str]] = OrderedDict()
        """Each run's latest window summary, by its id: a call names it, sent once."""
        self._max_runs = max_runs
        self._results: OrderedDict[str, str] = OrderedDict()
        self._result_chars = 0
        self._max_result_chars = max_result_chars
        self.misses = 0

    def keep_result(self, content: str) -> str | None:
        """Keep a tool activity's result; the ref that names it, or None to send it inline."""
        if len(content) < REF_MIN_CHARS or len(content) > self._max_result_chars:
            return None
        ref = uuid.uuid4().hex  # per attempt: a stale attempt's content never passes for another
        self._results[ref] = content
        self._result_chars += len(content)
        while self._result_chars > self._max_result_chars:
            _, dropped = self._results.popitem(last=False)
            self._result_chars -= len(dropped)
        return ref

    async def full_request(self, request: ModelRequest) -> ModelRequest:
        """The request with the whole conversation, as providers need it."""
        ref = request.transcript
        if ref is None:
            return request
        base = await self.prefix(ref)
        new = await self._with_contents(request, ref)
        return request.model_copy(
            update={"messages": base + new, "transcript": None, "content_refs": {}}
        )

    def windowed(self, request: ModelRequest, full: ModelRequest) -> ModelRequest:
        """The request as its provider is sent it: the window the workflow chose over the
        whole conversation (`full`), its summary kept for the next calls."""
        window = request.window
        if window is None:
            return full
        key = (
            (request.transcript.workflow_id, request.transcript.conversation_id)
            if (request.transcript is not None)
            else None
        )
        summary = window.summary
        if summary is not None and key is not None:
            self._summaries[key] = (window.summary_id, summary)
            self._summaries.move_to_end(key)
            while len(self._summaries) > self._max_runs:
                self._summaries.popitem(last=False)
        elif window.summary_id and window.start:
            kept = self._summaries.get(key) if key is not None else None
            if kept is None or kept[0] != window.summary_id:
                raise ApplicationError(
                    "this worker lacks the summary that heads the model's window",
                    type=WINDOW_MISS,
                    non_retryable=True,
                    category=ApplicationErrorCategory.BENIGN,  # expected; the workflow resends
                )
            summary = kept[1]
        messages = windowed(full.messages, window, summary)
        shown = window.model_copy(update={"summary": None})  # providers read `messages` only
        return full.model_copy(update={"messages": messages, "window": shown})

    async def span(self, ref: TranscriptRef, start: int) -> list[Message]:
        """Messages `start:ref.length` of the conversation, from the cache or the workflow."""
        cached = self._runs.get((ref.workflow_id, ref.conversation_id))
        if cached is not None and len(cached) >= ref.length:
            return cached[start : ref.length]
        self.misses += 1
        return await _query(ref.workflow_id, start, ref.length)

    def remember(self, request: ModelRequest, full: ModelRequest, reply: AssistantMessage) -> None:
        """Keep the conversation and the reply, which the workflow counts as already sent."""
        if request.transcript is None:
            return
        # Used: a retry after this point (rare) reads them from the workflow.
        self._forget_results(request.content_refs.values())
        key = (request.transcript.workflow_id, request.transcript.conversation_id)
        self._runs[key] = [*full.messages, reply]
        self._runs.move_to_end(key)
        while len(self._runs) > self._max_runs:
            self._runs.popitem(last=False)

    async def prefix(self, ref: TranscriptRef) -> list[Message]:
        """The conversation's first `ref.length` messages, from the cache or the workflow."""
        if ref.length == 0:
            return []
        cached = self._runs.get((ref.workflow_id, ref.conversation_id))
        if cached is not None and len(cached) >= ref.length:
            return cached[: ref.length]
        self.misses += 1
        return await _query(ref.workflow_id, 0, ref.length)

    async def _with_contents(self, request: ModelRequest, ref: TranscriptRef) -> list[Message]:
        """`request.messages` with the content of every tool message sent by ref; the ones
        this worker lacks come from the workflow, in one query."""
        messages = list(request.messages)
        missing: list[int] = []
        for index, result_ref in request.content_refs.items():
            content = self._results.get(result_ref)
            if content is None:
                missing.append(index)
            else:
                messages[index] = messages[index].model_copy(update={"content": content})
        if missing:
            self.misses += 1
            low, high = min(missing), max(missing) + 1
            fetched = await _query(ref.workflow_id, ref.length + low, ref.length + high)
            for index in missing:
                messages[index] = fetched[index - low]
        return messages

    def _forget_results(self, refs: Iterable[str]) -> None:
        for ref in refs:
            content = self._results.pop(ref, None)
            if content is not None:
                self._result_chars -= len(content)


async def _query(workflow_id: str, start: int, end: int) -> list[Message]:
    """Prompt messages `start:end` of the running conversation, read from the workflow."""
    if activity.info().is_local:
        raise ApplicationError(
            "the conversation is not in this worker's cache, and a local activity cannot "
            "query the run whose workflow task it holds open",
            type=TRANSCRIPT_MISS,
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,  # expected; the workflow resends
        )
    handle = activity.client().get_workflow_handle(workflow_id)
    messages: list[Message] = []
    while start + len(messages) < end:
        page: TranscriptPage = await handle.query(
            "transcript",
            TranscriptQuery(start=start + len(messages), end=end),
            result_type=TranscriptPage,
        )
        if page.next <= start + len(messages):
            raise RuntimeError(f"transcript of {workflow_id} stopped at {page.next}")
        messages.extend(page.messages)
    return messages
