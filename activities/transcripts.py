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
from durable_agent._model_io import ModelRequest, TranscriptRef

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
        base = await self._prefix(ref)
        return request.model_copy(update={"messages": base + request.messages, "transcript": None})

    def remember(self, request: ModelRequest, full: ModelRequest, reply: AssistantMessage) -> None:
        """Keep the conversation and the reply the workflow will count as already sent."""
        ref = request.transcript
        workflow = activity.info()
        key = (
            (ref.workflow_id, ref.run_id)
            if ref
            else (workflow.workflow_id or "", workflow.workflow_run_id or "")
        )
        self._runs[key] = [*full.messages, reply]
        self._runs.move_to_end(key)
        while len(self._runs) > self._max_runs:
            self._runs.popitem(last=False)

    async def _prefix(self, ref: TranscriptRef) -> list[Message]:
        cached = self._runs.get((ref.workflow_id, ref.run_id))
        if cached is not None and len(cached) >= ref.length:
            return cached[: ref.length]
        self.misses += 1
        handle = activity.client().get_workflow_handle(ref.workflow_id, run_id=ref.run_id)
        messages: list[Message] = await handle.query(
            "transcript", ref.length, result_type=list[Message]
        )
        if len(messages) != ref.length:
            raise RuntimeError(
                f"transcript query returned {len(messages)} of {ref.length} messages"
            )
        return messages
