"""The outbox: everything about what a model or hook call carries, in one place.

A model activity's worker keeps the conversation it has seen (`activities/transcripts.py`), so
each call carries only the messages it lacks plus a `TranscriptRef`; large tool results it keeps
too, so the next call names them by ref instead of carrying them again. When a local call's
worker lacks the conversation (a local activity cannot query the run it holds open), the call
is made again with the conversation whole. Local activities' results stay in the open workflow
task until it completes, so past `LOCAL_FLUSH_BYTES` the loop ends the task with a short timer.

Sending only what is new keeps a run's history growing linearly: the whole conversation in every
model call makes it grow quadratically (measured: 2.9 KB a turn at 20 turns, 9.3 KB at 100).
Plain Python, unit-tested without a server (tests/test_outbox.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # Pure data models and the agent definitions the worker registered.
    from durable_agent.authoring._agent import Agent
    from durable_agent.authoring._hooks import Hook
    from durable_agent.wire import (
        TRANSCRIPT_MISS,
        ContextWindow,
        HookInvocation,
        Message,
        ModelRequest,
        ToolMessage,
        ToolSpec,
        TranscriptRef,
    )
    from durable_agent.wire.limits import LOCAL_FLUSH_BYTES

from .failures import CALL_FAILED

_Input = TypeVar("_Input")
_Output = TypeVar("_Output")


class Outbox:
    def __init__(self, workflow_id: str, conversation_id: str, sent: int = 0) -> None:
        self.workflow_id = workflow_id
        self.conversation_id = conversation_id
        """Stays the same across continue-as-new, so the activity side's cache stays valid."""
        self.sent = sent
        """How many messages of the conversation the model activity side already has."""
        self._refs: dict[str, str] = {}
        """Tool results the tool activity's worker keeps, by tool_call_id, not yet sent."""
        self._held_locally = 0
        """Bytes of local-activity results held in the open workflow task."""
        self.summary_sent = 0
        """Which window summary the model activity side has (`ContextWindow.summary_id`)."""
        self._summary_pending = 0

    def transcript(self) -> TranscriptRef:
        return TranscriptRef(
            workflow_id=self.workflow_id, conversation_id=self.conversation_id, length=self.sent
        )

    # ------------------------------------------------------------------ model calls

    def model_request(
        self,
        agent: Agent,
        prompt: list[Message],
        listed: Sequence[ToolSpec] = (),
        turn: int = 0,
        window: ContextWindow | None = None,
    ) -> ModelRequest:
        """What the next model call carries: the messages after `sent`, tool results by ref,
        the agent's tools and the tools its MCP servers `listed`, and the `window` the provider
        sees (its summary only when the activity side lacks it). A local model gets no refs:
        its input never reaches history, and its worker may not hold the tool's result."""
        refs, self._refs = self._refs, {}
        window = self._carried(window)
        messages = prompt[self.sent :]
        content_refs: dict[int, str] = {}
        if not agent.local_model and refs:
            messages = list(messages)
            for position, message in enumerate(messages):
                ref = refs.get(message.tool_call_id) if isinstance(message, ToolMessage) else None
                if ref is not None:
                    content_refs[position] = ref
                    messages[position] = message.model_copy(update={"content": ""})
        return ModelRequest(
            model=agent.model_string,
            agent=agent.name,
            instructions=agent.instructions or None,
            messages=messages,
            transcript=self.transcript(),
            content_refs=content_refs,
            tools=[*agent.tool_specs(), *listed],
            settings=agent.settings,
            output=agent.output.format if agent.output is not None else None,
            stream_turn=turn if agent.stream and not agent.local_model else None,
            window=window,
        )

    def with_window(self, request: ModelRequest, window: ContextWindow | None) -> ModelRequest:
        """`request` with the `window` a count or a compaction planned anew, by the same rule
        as `model_request`: its summary only when the activity side lacks it."""
        return request.model_copy(update={"window": self._carried(window)})

    def _carried(self, window: ContextWindow | None) -> ContextWindow | None:
        if window is None:
            return None
        self._summary_pending = window.summary_id
        if window.summary_id == self.summary_sent:
            return window.model_copy(update={"summary": None})
        return window

    def whole(self, request: ModelRequest, prompt: list[Message]) -> ModelRequest:
        """The same call with the whole conversation, for a worker that lacks it."""
        self.sent = 0
        update = {"messages": prompt, "transcript": self.transcript(), "content_refs": {}}
        return request.model_copy(update=update)

    def replied(self, prompt: list[Message]) -> None:
        """The model activity side now has `prompt` and the reply it produced."""
        self.sent = len(prompt) + 1
        self.summary_sent = self._summary_pending

    def keep_ref(self, tool_call_id: str, ref: str) -> None:
        """The result of call `tool_call_id` is kept by its activity's worker under `ref`."""
        self._refs[tool_call_id] = ref

    # ------------------------------------------------------------------ hook calls

    def hook_invocation(self, hook: Hook, agent: str, turn: int) -> HookInvocation:
        return HookInvocation(hook=hook.name, agent=agent, turn=turn, transcript=self.transcript())

    @staticmethod
    def whole_hook(invocation: HookInvocation, prompt: list[Message]) -> HookInvocation:
        messages = prompt[: invocation.transcript.length]
        return invocation.model_copy(update={"messages": messages})

    # ------------------------------------------------------------------ local activities

    def held_locally(self, size: int) -> None:
        self._held_locally += size

    def flush_due(self) -> bool:
        """True once local results would make the workflow task's completion too large;
        the caller then ends the task (a short timer) so they are written to history."""
        if self._held_locally < LOCAL_FLUSH_BYTES:
            return False
        self._held_locally = 0
        return True


async def whole_on_miss(
    call: Callable[[_Input], Awaitable[_Output]], first: _Input, whole: Callable[[], _Input]
) -> _Output:
    """Call with a reference to the conversation; if a local call's worker lacks it, call
    again with the conversation itself."""
    try:
        return await call(first)
    except CALL_FAILED as exc:
        cause = exc.cause if isinstance(exc, ActivityError) else exc
        if not (isinstance(cause, ApplicationError) and cause.type == TRANSCRIPT_MISS):
            raise
    return await call(whole())
