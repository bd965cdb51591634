"""Fallback models (README "Fallback models"): `Agent(model=[primary, fallback, ...])`.

A model call that fails for good (its retries spent, a non-retryable status, a refused
request) is made again with the next model, across providers, until one answers or the list
ends (then the call fails as before). Each switch is a `model_fallback` event naming the model
that failed, why, and the one asked next; the `model_called` event that follows names the model
that answered, with its own tokens. Not a fallback: a cancelled or interrupted call, and the
loop's own signals (a worker that lacks the transcript or the window, a request too long for
the window, which the context policy compacts and retries). An agent with one model takes the
path it always took: no new command, no new event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # Pure data models and the agent definitions the worker registered.
    from durable_agent._causes import cause_type, innermost
    from durable_agent.authoring._agent import Agent
    from durable_agent.wire import (
        CONTEXT_TOO_LONG,
        TRANSCRIPT_MISS,
        WINDOW_MISS,
        ModelRequest,
        ModelResponse,
    )

from .conversation import Conversation
from .failures import CALL_FAILED, cause_text, is_cancelled_exception

_THE_LOOPS_OWN = frozenset({TRANSCRIPT_MISS, WINDOW_MISS, CONTEXT_TOO_LONG})
"""Errors the loop answers itself (resend whole, compact): the same model is asked again."""


@dataclass(frozen=True)
class Answered:
    """Who answered a model call, for its metrics: the model string asked (not the name the
    provider reported, which varies by snapshot), and `fallback`, why the model before it
    failed (its failure type, e.g. `ProviderRejected`) or `none` when the first one answered.
    Both are bounded label values."""

    model: str
    fallback: str = "none"


class Fallbacks:
    """A model call made with each model of the agent's list in turn, and who answered."""

    def __init__(self, conversation: Conversation) -> None:
        self._conversation = conversation
        self.answered: Answered | None = None
        """Who answered the last call that succeeded."""

    async def call(
        self,
        agent: Agent,
        request: ModelRequest,
        execute: Callable[[ModelRequest], Awaitable[ModelResponse]],
        cut: Callable[[], bool],
    ) -> ModelResponse:
        """`execute(request)`, then with each fallback model while the call fails for good.
        `cut`: the call was interrupted (its cancellation is not a failure)."""
        models, self.answered = agent.model_strings, None
        if len(models) == 1:
            response = await execute(request)
            self.answered = Answered(models[0])
            return response
        why = "none"
        for position, model in enumerate(models):
            asked = request if position == 0 else request.model_copy(update={"model": model})
            try:
                response = await execute(asked)
            except CALL_FAILED as exc:
                last = position + 1 == len(models)
                if last or cut() or is_cancelled_exception(exc) or _loops_own(exc):
                    raise
                why = cause_type(exc) or type(innermost(exc)).__name__
                self._conversation.event(
                    "llm",
                    "model_fallback",
                    model=model,
                    error=cause_text(exc),
                    next=models[position + 1],
                )
                continue
            self.answered = Answered(model, why)
            return response
        raise AssertionError("unreachable: the last model's failure is raised")


def _loops_own(exc: BaseException) -> bool:
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    return isinstance(cause, ApplicationError) and cause.type in _THE_LOOPS_OWN
