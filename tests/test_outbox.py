"""The outbox without a server: model and hook calls carry only what the activity side lacks,
tool results by ref, the whole conversation again after a miss, and the local flush."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from durable_agent import hook
from durable_agent.wire import TRANSCRIPT_MISS, HookContext, Message
from durable_agent.wire.limits import LOCAL_FLUSH_BYTES
from durable_agent.workflows.outbox import Outbox, whole_on_miss

from .components import DESK, LOCAL_DESK, answer, asks, call, user

TURN_ONE: list[Message] = [user("hi"), asks(call("c1", "lookup"))]
TURN_TWO: list[Message] = [*TURN_ONE, answer("c1", "x" * 2000), user("and?")]


def outbox(sent: int = 0) -> Outbox:
    return Outbox("wf-1", "conv-1", sent)


def test_first_request_carries_the_conversation_and_describes_the_agent() -> None:
    request = outbox().model_request(DESK, TURN_ONE)
    assert request.messages == TURN_ONE
    assert (request.transcript and request.transcript.length, request.content_refs) == (0, {})
    assert (request.model, request.agent, request.instructions) == (
        "openai:gpt-4.1",
        "desk",
        "Help.",
    )
    assert request.tools == DESK.tool_specs()


def test_after_a_reply_only_new_messages_go() -> None:
    box = outbox()
    box.model_request(DESK, TURN_ONE[:1])
    box.replied(TURN_ONE[:1])
    assert box.sent == 2, "the prompt and the reply the activity produced"
    request = box.model_request(DESK, TURN_TWO)
    assert request.messages == TURN_TWO[2:]
    assert request.transcript is not None
    assert (request.transcript.workflow_id, request.transcript.conversation_id) == (
        "wf-1",
        "conv-1",
    )
    assert request.transcript.length == 2


def test_tool_results_go_by_ref_at_their_position_with_content_blanked() -> None:
    box = outbox(sent=2)
    box.keep_ref("c1", "ref-c1")
    request = box.model_request(DESK, TURN_TWO)
    assert request.content_refs == {0: "ref-c1"}
    assert request.messages[0].content == ""
    assert request.messages[1] == user("and?")
    assert TURN_TWO[2].content == "x" * 2000, "the conversation itself is untouched"


def test_refs_are_sent_once() -> None:
    box = outbox(sent=2)
    box.keep_ref("c1", "ref-c1")
    box.model_request(DESK, TURN_TWO)
    again = box.model_request(DESK, TURN_TWO)
    assert (again.content_refs, again.messages[0]) == ({}, TURN_TWO[2])


def test_a_ref_for_a_message_the_activity_side_has_is_not_sent() -> None:
    box = outbox(sent=3)
    box.keep_ref("c1", "ref-c1")
    request = box.model_request(DESK, TURN_TWO)
    assert (request.content_refs, request.messages) == ({}, TURN_TWO[3:])


def test_a_local_model_gets_contents_never_refs() -> None:
    box = outbox(sent=2)
    box.keep_ref("c1", "ref-c1")
    request = box.model_request(LOCAL_DESK, TURN_TWO)
    assert (request.content_refs, request.messages) == ({}, TURN_TWO[2:])
    assert box.model_request(DESK, TURN_TWO).content_refs == {}, "the ref was dropped"


def test_whole_resends_everything_and_resets_sent() -> None:
    box = outbox(sent=2)
    box.keep_ref("c1", "ref-c1")
    request = box.model_request(DESK, TURN_TWO)
    whole = box.whole(request, TURN_TWO)
    assert box.sent == 0
    assert (whole.messages, whole.content_refs) == (TURN_TWO, {})
    assert whole.transcript is not None and whole.transcript.length == 0
    assert (whole.model, whole.tools, whole.agent) == (request.model, request.tools, "desk")
    box.replied(TURN_TWO)
    assert box.sent == 5


@hook
def nudge(context: HookContext) -> None:
    """Nothing to say."""


def test_hook_invocation_names_the_conversation_and_whole_hook_carries_it() -> None:
    box = outbox(sent=4)
    invocation = box.hook_invocation(nudge, "desk", 3)
    assert (invocation.hook, invocation.agent, invocation.turn) == ("nudge", "desk", 3)
    assert (invocation.transcript.length, invocation.messages) == (4, None)
    later = [*TURN_TWO, user("arrived after the hook was invoked")]
    whole = Outbox.whole_hook(invocation, later)
    assert whole.messages == TURN_TWO, "what the hook was invoked on, not what came later"
    assert whole.transcript == invocation.transcript


def test_flush_is_due_at_the_threshold_then_resets() -> None:
    box = outbox()
    assert box.flush_due() is False
    box.held_locally(LOCAL_FLUSH_BYTES - 1)
    assert box.flush_due() is False
    box.held_locally(1)
    assert box.flush_due() is True
    assert box.flush_due() is False, "the count starts again after a flush"
    box.held_locally(LOCAL_FLUSH_BYTES // 2)
    box.held_locally(LOCAL_FLUSH_BYTES // 2)
    assert box.flush_due() is True


# ---------------------------------------------------------------------------- whole_on_miss


def activity_error(cause: BaseException | None) -> ActivityError:
    error = ActivityError(
        "activity failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="model.complete",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    error.__cause__ = cause
    return error


def miss() -> ApplicationError:
    return ApplicationError("no transcript", type=TRANSCRIPT_MISS, non_retryable=True)


def failing(*errors: BaseException) -> tuple[list[str], Callable[[str], Awaitable[str]]]:
    """A call that raises `errors` in turn, then answers with what it was given."""
    inputs: list[str] = []

    async def call(payload: str) -> str:
        inputs.append(payload)
        if len(inputs) <= len(errors):
            raise errors[len(inputs) - 1]
        return f"answered {payload}"

    return inputs, call


@pytest.mark.parametrize(
    "error",
    [miss(), activity_error(miss())],
    ids=["local-application-error", "activity-error-cause"],
)
async def test_a_transcript_miss_is_retried_whole_once(error: BaseException) -> None:
    inputs, call = failing(error)
    assert await whole_on_miss(call, "ref", lambda: "whole") == "answered whole"
    assert inputs == ["ref", "whole"]


async def test_no_whole_is_built_without_a_miss() -> None:
    inputs, call = failing()

    def whole() -> str:
        raise AssertionError("built without a miss")

    assert await whole_on_miss(call, "ref", whole) == "answered ref"
    assert inputs == ["ref"]


@pytest.mark.parametrize(
    "error",
    [
        ApplicationError("boom", type="ProviderError"),
        ApplicationError("no type"),
        activity_error(ApplicationError("boom", type="ProviderError")),
        activity_error(None),
        activity_error(ValueError(TRANSCRIPT_MISS)),
        ValueError("not a call failure"),
    ],
    ids=[
        "other-application-error",
        "untyped-application-error",
        "activity-error-other-cause",
        "activity-error-no-cause",
        "activity-error-non-application-cause",
        "not-a-call-failure",
    ],
)
async def test_other_failures_are_raised_as_they_are(error: BaseException) -> None:
    inputs, call = failing(error)
    with pytest.raises(type(error)) as raised:
        await whole_on_miss(call, "ref", lambda: "whole")
    assert raised.value is error
    assert inputs == ["ref"]


async def test_a_second_miss_is_raised() -> None:
    second = miss()
    inputs, call = failing(miss(), second)
    with pytest.raises(ApplicationError) as raised:
        await whole_on_miss(call, "ref", lambda: "whole")
    assert raised.value is second
    assert inputs == ["ref", "whole"]
