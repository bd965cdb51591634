"""Publishing a streaming model call's reply to the run's observers while it runs.

Deltas go to the run's Workflow Stream (`workflows/deltas.py` reads them) as batched signals:
the first delta after a pause goes at once (time to first token), later ones at most every
`PUBLISH_INTERVAL`, so a reply costs a signal per interval, not per token. Publishing serves
people watching: it never fails or slows the model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from types import TracebackType
from typing import Literal

from temporalio import activity
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from durable_agent.wire import DELTAS_TOPIC, ModelDelta

PUBLISH_INTERVAL = 0.05
"""Seconds between two batches (a signal each). Observers read every 50 ms while a call
streams, so a delta reaches them in about this much on top of the signal's round trip: the
goal is 100 ms at the median (`make bench` measures it)."""
RETRY_FOR = timedelta(seconds=10)
"""How long a batch is retried (the run may have ended meanwhile)."""

log = logging.getLogger(__name__)


class DeltaPublisher:
    """A `DeltaSink` that publishes to the run of the current activity."""

    def __init__(self, turn: int) -> None:
        self._turn = turn
        self._attempt = activity.info().attempt
        self._client = WorkflowStreamClient.from_within_activity(max_retry_duration=RETRY_FOR)
        self._topic = self._client.topic(DELTAS_TOPIC, type=ModelDelta)
        self._waiting: list[ModelDelta] = []
        """Deltas for the next batch. Kept here, not in the stream client's buffer, whose
        `flush()` sends again whatever arrived during a send: measured, that made about twice
        the signals (a third of them carrying one token) that one batch per interval makes."""
        self._ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self.failed = False

    def text(self, text: str) -> None:
        if text:
            self._publish("text", text=text)

    def tool_call(self, tool_call_id: str, name: str) -> None:
        self._publish("tool_call", tool_call_id=tool_call_id, name=name)

    def _publish(self, kind: Literal["text", "tool_call", "superseded"], **data: str) -> None:
        self._waiting.append(ModelDelta(turn=self._turn, attempt=self._attempt, kind=kind, **data))
        self._ready.set()

    async def __aenter__(self) -> DeltaPublisher:
        if self._attempt > 1:  # what earlier attempts streamed is not the reply
            self._publish("superseded")
        self._sender = asyncio.create_task(self._send(), name="delta-publisher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Unsent deltas are dropped: the reply, about to land as the message, holds their
        text (a last batch would cost a signal and a workflow task for nothing); a failed or
        cancelled call's are superseded anyway."""
        assert self._sender is not None
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender

    async def _send(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                batch, self._waiting = self._waiting, []
                for delta in batch:
                    self._topic.publish(delta)
                await self._client.flush()  # one signal: what arrives meanwhile waits its turn
                await asyncio.sleep(PUBLISH_INTERVAL)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.failed = True
            log.warning("stopped publishing model deltas: %s", error)
