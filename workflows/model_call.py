"""Step 2 of the loop: the turn's model call, from request to the message in the conversation.

A call is in one of three states: `Idle`, `Calling` (its activity handle, which an interrupt
cancels) or `Interrupted` (cut off by the `interrupt` update: what it had streamed becomes an
`interrupted` event, never a message a model would take as its own). The reply's token deltas
never come here: the model activity publishes them to the live bus (`durable_agent.live`),
beside the run, so they cost it no signal, no workflow task and no history. The run only says
that a call is in flight (`streaming`, for the `live` query) and, when an interrupt cuts one
off, keeps the text its interrupter read of it on the bus.
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
    from durable_agent.wire import MODEL_ACTIVITY, Message, ModelRequest, ModelResponse

from .context import ContextKeeper
from .conversation import Conversation
from .failures import CALL_FAILED, cause_text, is_cancelled_exception, reraise_cancellation
from .fallback import Answered, Fallbacks
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
    """Cut off by an interrupt: its cancellation is expected, not a failure. `partial`: what
    it had streamed, as the interrupter read it (`InterruptRequest.partial`)."""

    partial: str = ""


CallState = Idle | Calling | Interrupted


class ModelCall:
    def __init__(self, conversation: Conversation, outbox: Outbox, mcp: MCPToolsets) -> None:
        self._conversation = conversation
        self._outbox = outbox
        self._mcp = mcp
        self.state: CallState = Idle()
        self._context = ContextKeeper(conversation, outbox)
        self._fallbacks = Fallbacks(conversation)
        self.streaming = False
        """A model call is in flight (from its request to its message): observers read the
        live bus for its deltas, and the run more often."""

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
        self.state, self.streaming = Idle(), True
        try:
            send = partial(self._send, agent, prompt)
            response = await self._context.send(agent, prompt, request, send, outbox.with_window)
        except CALL_FAILED as exc:
            cut, self.state, self.streaming = self.state, Idle(), False
            if isinstance(cut, Interrupted) and is_cancelled_exception(exc):
                # What it had said is shown to people, never given to a model as its own.
                conversation.event(
                    "llm", "interrupted", turn=conversation.turns, partial=cut.partial
                )
                return None
            reraise_cancellation(exc)
            raise RunFailure(f"model call failed: {cause_text(exc)}", "ModelCallFailed") from exc
        self.state, self.streaming = Idle(), False
        self._context.measured(response)
        conversation.usage = conversation.usage + response.usage
        answered = self._fallbacks.answered or Answered(agent.model_string)
        telemetry.record_model_call(
            workflow.metric_meter(), agent.name, answered.model, response.usage, answered.fallback
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
        outbox.replied(prompt)
        return response

    async def _send(
        self, agent: Agent, prompt: list[Message], request: ModelRequest
    ) -> ModelResponse:
        """With a reference to the conversation, or whole to a worker that lacks it."""
        whole = partial(self._outbox.whole, request, prompt)
        execute = partial(self._execute, agent)
        cut = lambda: isinstance(self.state, Interrupted)  # noqa: E731 - read when it fails
        fallbacks = partial(self._fallbacks.call, agent, execute=execute, cut=cut)
        return await whole_on_miss(fallbacks, request, whole)

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

    def interrupt(self, partial: str = "") -> bool:
        """Cut the call in flight off (it is cancelled at once), keeping `partial` as what it
        had said; False when none is in flight."""
        if not isinstance(self.state, Calling):
            return False
        handle, self.state = self.state.handle, Interrupted(partial)
        handle.cancel()
        return True

    @property
    def calling(self) -> bool:
        return isinstance(self.state, Calling)
