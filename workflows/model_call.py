"""Step 2 of the loop: the turn's model call, from request to the message in the conversation.

A call is in one of three states: `Idle`, `Calling` (its activity handle, which an interrupt
cancels) or `Interrupted` (cut off by the `interrupt` update: what it had streamed becomes an
`interrupted` event, never a message a model would take as its own). The reply's token deltas
(`Deltas`, read by the `live` query) are handled here and nowhere else in the loop, so moving
them out of the workflow touches this module only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models, the agent definitions the worker registered and the replay-safe
    # metric helpers.
    from durable_agent import telemetry
    from durable_agent.authoring._agent import Agent
    from durable_agent.wire import MODEL_ACTIVITY, Message, ModelDelta, ModelRequest, ModelResponse

from .context import ContextKeeper
from .conversation import Conversation
from .deltas import Deltas
from .failures import CALL_FAILED, cause_text, is_cancelled_exception, reraise_cancellation
from .outbox import Outbox, whole_on_miss
from .outcomes import RunFailure
from .toolsets import MCPToolsets


@dataclass(frozen=True)
class Idle:
    """No model call is in flight."""


@dataclass(frozen=True)
class Calling:
    handle: workflow.ActivityHandle[ModelResponse]


@dataclass(frozen=True)
class Interrupted:
    """Cut off by an interrupt: its cancellation is expected, not a failure."""


CallState = Idle | Calling | Interrupted


class ModelCall:
    def __init__(
        self, conversation: Conversation, outbox: Outbox, mcp: MCPToolsets, deltas: Deltas
    ) -> None:
        """`deltas` is built in the workflow's `__init__`: the Workflow Stream insists on it."""
        self._conversation = conversation
        self._outbox = outbox
        self._mcp = mcp
        self._deltas = deltas
        self.state: CallState = Idle()
        self._context = ContextKeeper(conversation, outbox)

    async def call(self, agent: Agent) -> ModelResponse | None:
        """The turn's model call, its message appended; None when an interrupt cut it off.
        Raises `RunFailure` when the call failed for good."""
        conversation, outbox = self._conversation, self._outbox
        conversation.turns += 1
        conversation.event("agent", "turn_started", turn=conversation.turns, agent=agent.name)
        prompt = conversation.prompt()
        window = await self._context.window(agent, prompt)  # compacted first when due
        listed = self._mcp.specs(agent)
        request = outbox.model_request(agent, prompt, listed, conversation.turns, window)
        started = workflow.now()
        self._deltas.started(conversation.turns)
        self.state = Idle()
        try:
            send = partial(self._send, agent, prompt)
            response = await self._context.send(agent, prompt, request, send)
        except CALL_FAILED as exc:
            cut = isinstance(self.state, Interrupted)
            self.state = Idle()
            if cut and is_cancelled_exception(exc):
                # What it had said is shown to people, never given to a model as its own.
                conversation.event(
                    "llm", "interrupted", turn=conversation.turns, partial=self._deltas.text()
                )
                self._deltas.ended()
                return None
            self._deltas.ended()
            reraise_cancellation(exc)
            raise RunFailure(f"model call failed: {cause_text(exc)}", "ModelCallFailed") from exc
        self.state = Idle()
        self._context.measured(response)
        conversation.usage = conversation.usage + response.usage
        telemetry.record_model_call(
            workflow.metric_meter(), agent.name, agent.model_string, response.usage
        )
        message = response.message
        if agent.local_model:
            outbox.held_locally(len(message.model_dump_json()))
        if message.agent is None:  # recorded before the activity stamped it
            message.agent = agent.name
        conversation.event(
            "llm",
            "model_called",
            model=response.model or agent.model_string,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            latency_ms=int((workflow.now() - started).total_seconds() * 1000),
        )
        conversation.append(message)
        self._deltas.ended()
        outbox.replied(prompt)
        return response

    async def _send(
        self, agent: Agent, prompt: list[Message], request: ModelRequest
    ) -> ModelResponse:
        """With a reference to the conversation, or whole to a worker that lacks it."""
        whole = partial(self._outbox.whole, request, prompt)
        return await whole_on_miss(partial(self._execute, agent), request, whole)

    async def _execute(self, agent: Agent, request: ModelRequest) -> ModelResponse:
        # Heartbeats: a dead worker's call is retried in seconds, and a cancelled run cancels
        # it (TRY_CANCEL, the default: the run does not wait for the call to acknowledge).
        # Local activities have none.
        start = (
            workflow.start_local_activity
            if agent.local_model
            else partial(workflow.start_activity, heartbeat_timeout=agent.heartbeat_timeout)
        )
        handle: workflow.ActivityHandle[ModelResponse] = start(
            MODEL_ACTIVITY,
            request,
            result_type=ModelResponse,
            start_to_close_timeout=agent.model_timeout,
            retry_policy=agent.model_retry,
            # no summary: each is a payload the SDK encodes and visits per activity
            # (measured: a third of the worker's serialization work); the type names the tool.
        )
        if isinstance(self.state, Idle):
            self.state = Calling(handle)
        try:
            return await handle
        finally:
            if isinstance(self.state, Calling):
                self.state = Idle()

    def interrupt(self) -> bool:
        """Cut the call in flight off (it is cancelled at once); False when none is."""
        if not isinstance(self.state, Calling):
            return False
        handle, self.state = self.state.handle, Interrupted()
        handle.cancel()
        return True

    @property
    def calling(self) -> bool:
        return isinstance(self.state, Calling)

    # ------------------------------------------------------------------ the live view

    @property
    def streaming(self) -> bool:
        return self._deltas.turn is not None

    def deltas(self, since: int) -> tuple[list[ModelDelta], int]:
        """The streaming call's deltas from offset `since`, and the offset to read from next."""
        return self._deltas.read(since)

    def detach_pollers(self) -> None:
        """Before continuing as new: release anyone polling the stream with its update."""
        self._deltas.detach_pollers()

    def stream_end(self) -> int:
        """Where the next run's delta offsets go on, so observers' cursors stay valid."""
        return self._deltas.end
