"""The model activity's side of the conversation, so each model call carries only what is new.

The workflow sends the messages since its previous model call plus a `TranscriptRef`; this
cache holds the rest per run. On a miss (another worker, a restart, an evicted entry) the
activity asks the workflow itself with the `transcript` query: correctness never depends on
the cache, only speed does.
"""

from __future__ import annotations

from collections import OrderedDict

from temporalio import activity

from durable_agent._messages import AssistantMessage, Message
from durable_agent._model_io import ModelRequest, TranscriptPage, TranscriptQuery, TranscriptRef

_Key = tuple[str, str]


class TranscriptCache:
    def __init__(self, max_runs: int = 256) -> None:
        self._runs: OrderedDict[_Key, list[Message]] = OrderedDict()
        self._max_runs = max_runs
        self.misses = 0

    async def full_request(self, request: ModelRequest) -> ModelRequest:
        """The request with the whole conversation, as providers need it."""
        ref = request.transcript
        if ref is None:
            return request
        base = await self.prefix(ref)
        return request.model_copy(update={"messages": base + request.messages, "transcript": None})

    def remember(self, request: ModelRequest, full: ModelRequest, reply: AssistantMessage) -> None:
        """Keep the conversation and the reply, which the workflow counts as already sent."""
        if request.transcript is None:
            return
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
        handle = activity.client().get_workflow_handle(ref.workflow_id)
        messages: list[Message] = []
        while len(messages) < ref.length:
            page: TranscriptPage = await handle.query(
                "transcript",
                TranscriptQuery(start=len(messages), end=ref.length),
                result_type=TranscriptPage,
            )
            if page.next <= len(messages):
                raise RuntimeError(f"transcript of {ref.workflow_id} stopped at {page.next}")
            messages.extend(page.messages)
        return messages
