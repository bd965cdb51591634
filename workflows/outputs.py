"""Typed outputs: the final answer checked against the agent's `output_type`.

An answer that validates ends the turn as `Final` with its value (and an `output_valid` event
that carries it, for readers of a conversation's turns). One that does not goes back
to the model as a user message with the validation error (`output_invalid` event), up to the
agent's `output_retries` times in a row; then the run fails (`OutputValidationFailed`), never
a crash. The check is pure Python over recorded text, so a replay takes the same path. The
agent is the one that answered: after a handoff, the target's type is the one that holds.
Plain text agents (`output_type=str`) never reach here: their turn is unchanged.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models, and the agent definitions (with their validators) the worker registered.
    from durable_agent._output import Invalid, Valid
    from durable_agent.authoring._agent import Agent
    from durable_agent.wire import AssistantMessage, UserMessage

from .conversation import Conversation
from .outcomes import Final, RunAgain, RunFailure

OUTPUT_VALID_EVENT = "output-valid-event"
"""Patch id: an answer that validates is recorded (an `output_valid` event with the value), so
readers of a conversation's turns (AG-UI's `RUN_FINISHED.result`) get each typed answer. Runs
from before it replay without the event: the items' indexes stay those observers read."""

RETRY_NAME = "output_check"
"""The name on the loop's own retry prompts (input guardrails skip them)."""
RETRY_PROMPT = (
    "Your answer does not match the required output schema:\n{error}\n"
    "Answer again with only the corrected JSON."
)


class OutputCheck:
    def __init__(self, conversation: Conversation) -> None:
        self._conversation = conversation
        self.failures = 0
        """Answers in a row that did not validate."""

    def check(self, agent: Agent, message: AssistantMessage) -> Final | RunAgain:
        """`Final` (with the typed value) or, for an answer that does not validate, the error
        sent back to the model. Raises `RunFailure` once the retries are spent."""
        spec = agent.output
        if spec is None:
            return Final()
        match spec.validate(message.content):
            case Valid(value=value):
                self.failures = 0
                if workflow.patched(OUTPUT_VALID_EVENT):
                    self._conversation.event(
                        "agent", "output_valid", agent=agent.name, output=value
                    )
                return Final(output=value)
            case Invalid(error=error):
                self.failures += 1
                self._conversation.event(
                    "agent", "output_invalid", agent=agent.name, attempt=self.failures, error=error
                )
                if self.failures > agent.output_retries:
                    raise RunFailure(
                        f"the answer of agent {agent.name!r} did not match its output type after "
                        f"{agent.output_retries} retries: {error}",
                        "OutputValidationFailed",
                    )
                retry = UserMessage(content=RETRY_PROMPT.format(error=error), name=RETRY_NAME)
                self._conversation.append(retry)
                return RunAgain()
