"""The model's reply while it streams: what the run's observers read before the message lands.

The model activity publishes `ModelDelta`s to the run's Workflow Stream
(`temporalio.contrib.workflow_streams`): batched signals, deduplicated by publisher and
sequence, so a retried publish never doubles text. The workflow reads them here for the `live`
query and for an interrupt (what a cut-off call had said), and drops a call's deltas once its
message is in the conversation: memory holds at most one call's deltas, and a run continued as
new carries only the offset, so observers' cursors stay valid across runs.

Observers never poll the stream with its update: each would be an update in the run's history
and count against the server's limit of updates in flight (10 by default), where approvals and
messages must never wait. They read the `live` query (`AgentClient.events`).
"""

from __future__ import annotations

import base64
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payload

with workflow.unsafe.imports_passed_through():
    from temporalio.contrib.workflow_streams import PollInput, PollResult, WorkflowStream

    from durable_agent.wire import DELTAS_TOPIC, ModelDelta

# The stream's handler names, which are its wire contract (its README names the poll query).
_POLL = "__temporal_workflow_stream_poll"
_OFFSET = "__temporal_workflow_stream_offset"


class Deltas:
    def __init__(self, stream: WorkflowStream) -> None:
        """`stream` is built in the workflow's `__init__` (the stream insists on it)."""
        self._stream = stream
        self.turn: int | None = None
        """The turn whose model call is streaming now, if any."""

    @property
    def end(self) -> int:
        """The offset after the last delta: what a run continued as new starts from."""
        offset: int = workflow.get_query_handler(_OFFSET)()  # type: ignore[misc]
        return offset

    def read(self, since: int, limit: int = 2000) -> tuple[list[ModelDelta], int]:
        """Deltas of the streaming call from offset `since` (at most `limit`), and the offset to
        read from next. Late deltas of a call that has ended (a cancelled or retried attempt
        still flushing) are skipped."""
        poll: Any = workflow.get_query_handler(_POLL)
        page: PollResult = poll(PollInput(topics=[DELTAS_TOPIC], from_offset=since))
        converter = workflow.payload_converter()
        deltas: list[ModelDelta] = []
        next_offset = page.next_offset
        for item in page.items:
            if len(deltas) >= limit:
                next_offset = item.offset
                break
            payload = Payload.FromString(base64.b64decode(item.data))
            delta = converter.from_payload(payload, ModelDelta)
            if delta.turn == self.turn:
                deltas.append(delta.model_copy(update={"offset": item.offset}))
        return deltas, next_offset

    def text(self) -> str:
        """What the streaming call has said so far (its latest attempt)."""
        deltas, _ = self.read(0, limit=1_000_000)
        latest = max((d.attempt for d in deltas), default=0)
        return "".join(d.text for d in deltas if d.kind == "text" and d.attempt == latest)

    def detach_pollers(self) -> None:
        """Before continuing as new: release anyone polling the stream with its update."""
        self._stream.detach_pollers()

    def started(self, turn: int) -> None:
        self.turn = turn

    def ended(self) -> None:
        """The call's message (or its interruption) is in the conversation: its deltas go."""
        self.turn = None
        self._stream.truncate(self.end)
