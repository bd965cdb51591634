"""The model's window over a long conversation (workflows/window.py, activities/summary.py and
the activity side's `windowed`), without a server: plans, pairs, prefixes and bounds."""

from __future__ import annotations

import itertools
import json

import pytest
from temporalio.exceptions import ApplicationError

from durable_agent.activities.providers._errors import status_error, stream_cut
from durable_agent.activities.summary import summarize
from durable_agent.activities.transcripts import TranscriptCache
from durable_agent.wire import (
    CONTEXT_TOO_LONG,
    WINDOW_MISS,
    AssistantMessage,
    ContextPolicy,
    ContextWindow,
    Message,
    ModelRequest,
    ModelResponse,
    StatusEvent,
    SummaryRequest,
    ToolCall,
    ToolMessage,
    TranscriptRef,
    UserMessage,
    estimate_tokens,
    windowed,
)
from durable_agent.workflows.window import Compaction, Limits, Window, limits

OUTPUT = "x" * 5_000
POLICY = ContextPolicy(window_tokens=8_000, reply_tokens=1_000, summary_tokens=200)
LIMIT = limits(POLICY, "openai:test", None)


def turn(i: int) -> list[Message]:
    call = ToolCall(id=f"c{i}", name="fetch", arguments=json.dumps({"page": i}))
    return [
        AssistantMessage(content=f"reading page {i}", tool_calls=[call]),
        ToolMessage(tool_call_id=f"c{i}", name="fetch", content=f"page {i} " + OUTPUT),
    ]


def conversation(turns: int) -> list[Message]:
    messages: list[Message] = [UserMessage(content="read every page")]
    for i in range(turns):
        messages += turn(i)
    return messages


def take(window: Window, step: Compaction | None, summary: str = "pages so far") -> None:
    if step is not None:
        window.apply(step, summary if step.fold else None)


def pairs_complete(messages: list[Message]) -> bool:
    """Every tool result's call is in the window, and every call has its result."""
    calls = {c.id for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls}
    results = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return calls == results


def test_a_short_conversation_is_sent_whole() -> None:
    window = Window()
    assert window.plan(POLICY, LIMIT, conversation(2), overhead=50) is None
    assert window.current == ContextWindow()


def test_old_tool_outputs_are_shortened_before_any_turn_is_folded() -> None:
    policy = POLICY.model_copy(update={"keep_turns": 1})
    window, prompt = Window(), conversation(6)  # ~7,800 tokens: over 85% of 7,000
    step = window.plan(policy, LIMIT, prompt, overhead=50)
    assert step is not None and step.fold is None
    assert step.window.start == 0
    assert step.window.clipped_before == len(prompt) - 2  # the last reply and its result whole
    assert step.after <= LIMIT.to < step.before


def test_a_long_conversation_folds_its_oldest_turns_and_keeps_the_last_whole() -> None:
    window, prompt = Window(), conversation(40)
    step = window.plan(POLICY, LIMIT, prompt, overhead=50)
    assert step is not None and step.fold == (0, step.window.start)
    assert not isinstance(prompt[step.window.start], ToolMessage)
    take(window, step)
    sent = windowed(prompt, window.current, window.summary)
    assert sent[0].content.endswith("pages so far")
    assert [m.content for m in sent[-2:]] == [m.content for m in prompt[-2:]]  # last turn whole
    assert pairs_complete(sent)
    assert window.estimate(prompt, 50, window.current) <= LIMIT.to


def test_a_thousand_turns_stay_under_the_window_paired_and_compact_in_steps() -> None:
    window, prompt = Window(), [UserMessage(content="read every page")]
    compactions = 0
    previous: list[Message] = []
    for i in range(1_000):
        prompt += turn(i)
        step = window.plan(POLICY, LIMIT, prompt, overhead=50)
        if step is not None:
            compactions += 1
            take(window, step, f"summary {compactions}")
        sent = windowed(prompt, window.current, window.summary)
        assert window.estimate(prompt, 50, window.current) <= LIMIT.at
        assert pairs_complete(sent)
        if step is None:  # between compactions the window only grows at its end
            assert sent[: len(previous)] == previous
        previous = sent
    assert 100 < compactions < 600  # in steps, not every turn


def compaction_turns(output_chars: int, turns: int, room: bool) -> list[int]:
    """The turns at which a run of `turns` tool results of `output_chars` compacts (the
    default policy, a 128k window)."""
    policy = ContextPolicy()
    limit = limits(policy, "openai-chat:local-model", None)
    window, prompt, compacted = Window(), [UserMessage(content="read every page")], []
    for i in range(turns):
        call = ToolCall(id=f"c{i}", name="fetch", arguments=json.dumps({"page": i}))
        prompt += [
            AssistantMessage(tool_calls=[call]),
            ToolMessage(tool_call_id=f"c{i}", name="fetch", content="x" * output_chars),
        ]
        step = window.plan(policy, limit, prompt, 50, room=room)
        if step is not None:
            compacted.append(i)
            take(window, step)
        assert window.estimate(prompt, 50, window.current) <= limit.at
        assert windowed(prompt, window.current, window.summary)[-1] == prompt[-1]  # whole
    return compacted


def test_a_compaction_leaves_room_for_more_turns_the_size_of_the_last() -> None:
    """tests/test_long_conversation.py's 100 KB tool outputs (~25k tokens a turn) under the
    default 128k window: compacting down to `compact_to` left under two turns of room and the
    run compacted every other turn. Now four turns fit between compactions, as many as such
    turns can (the fifth would pass `compact_at`)."""
    before = compaction_turns(100 * 1024, 100, room=False)  # as runs recorded before it plan
    now = compaction_turns(100 * 1024, 100, room=True)
    assert {b - a for a, b in itertools.pairwise(before[2:])} == {2}
    assert {b - a for a, b in itertools.pairwise(now)} == {4}
    # Small turns already had room: compact_to still decides (5 KB outputs, ~33 turns apart).
    small = compaction_turns(5 * 1024, 300, room=True)
    assert small == compaction_turns(5 * 1024, 300, room=False)
    assert min(b - a for a, b in itertools.pairwise(small)) > 30


def test_without_summaries_what_falls_out_is_left_with_a_note() -> None:
    policy = POLICY.model_copy(update={"summarize": False})
    window, prompt = Window(), conversation(40)
    step = window.plan(policy, LIMIT, prompt, overhead=50)
    assert step is not None and step.fold is None and step.window.start > 0
    take(window, step)
    sent = windowed(prompt, window.current, window.summary)
    assert "left out" in sent[0].content and pairs_complete(sent)


def test_a_refused_prompt_compacts_even_under_the_estimate() -> None:
    window, prompt = Window(), conversation(3)
    assert window.plan(POLICY, LIMIT, prompt, 50) is None
    window.too_long()
    assert window.ratio > 1
    assert window.plan(POLICY, LIMIT, prompt, 50, force=True) is not None


def test_the_providers_count_scales_the_estimate_within_reason() -> None:
    window = Window()
    window.measured(input_tokens=2_000, sent=1_000)
    assert window.ratio == 2
    window.measured(input_tokens=11, sent=1_000)  # a placeholder figure, not a count
    assert window.ratio == 2


def test_the_window_is_restored_from_the_last_compaction_event() -> None:
    window, prompt = Window(), conversation(40)
    step = window.plan(POLICY, LIMIT, prompt, 50)
    assert step is not None
    take(window, step)
    event = StatusEvent(source="llm", kind="context_compacted", data=window.event_data(step))
    restored = Window()
    restored.restore([*prompt, event])
    assert restored.current == window.current and restored.summary == "pages so far"


def test_limits_know_common_models_and_keep_room_for_the_reply() -> None:
    policy = ContextPolicy()
    assert limits(policy, "anthropic:claude-sonnet-4-5", None).budget == 200_000 - 4_096
    assert limits(policy, "openai:gpt-4o-mini", 1_000).budget == 127_000
    assert limits(policy, "openai-chat:local-model", None) == Limits(123_904, 105_318, 61_952)
    with pytest.raises(ValueError, match="compact_to"):
        ContextPolicy(compact_at=0.5, compact_to=0.8)


# ---------------------------------------------------------------------- the activity side


def test_a_worker_without_the_summary_asks_for_it() -> None:
    cache = TranscriptCache()
    ref = TranscriptRef(workflow_id="w", conversation_id="c", length=0)
    full = ModelRequest(model="scripted:m", messages=conversation(3))
    window = ContextWindow(start=3, clipped_before=3, summary_id=1)
    request = full.model_copy(update={"transcript": ref, "window": window})
    with pytest.raises(ApplicationError) as raised:
        cache.windowed(request, full)
    assert raised.value.type == WINDOW_MISS
    with_summary = window.model_copy(update={"summary": "so far"})
    sent = cache.windowed(request.model_copy(update={"window": with_summary}), full)
    assert sent.messages[0].content.endswith("so far") and len(sent.messages) == 5
    assert cache.windowed(request, full).messages == sent.messages  # kept for the next call


async def test_a_span_longer_than_the_window_is_summarised_in_bounded_parts() -> None:
    prompts: list[int] = []

    async def complete(call: ModelRequest) -> ModelResponse:
        prompts.append(
            estimate_tokens(call.instructions or "")
            + estimate_tokens(call.messages[0].content or "")
        )
        return ModelResponse(message=AssistantMessage(content=f"summary after {len(prompts)}"))

    messages = conversation(200)[:-1]
    request = SummaryRequest(
        model="scripted:m", instructions="fold", start=0, end=len(messages), input_tokens=3_000
    )
    response = await summarize(request, messages, complete)
    assert response.calls == len(prompts) > 1
    assert max(prompts) <= 3_000
    assert response.summary == f"summary after {len(prompts)}"


# ---------------------------------------------------------------------- the providers' refusals


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        (
            "OpenAI Chat Completions",
            "Error code: 400 - {'error': {'message': \"This model's maximum context length is "
            "8192 tokens. However, your messages resulted in 8227 tokens. Please reduce the "
            "length of the messages.\", 'type': 'invalid_request_error', 'param': 'messages', "
            "'code': 'context_length_exceeded'}}",
        ),
        (
            "OpenAI Responses",
            "Your input exceeds the context window of this model. Please adjust your input and "
            "try again.",
        ),
        (
            "Anthropic Messages",
            "Error code: 400 - {'type': 'error', 'error': {'type': 'invalid_request_error', "
            "'message': 'prompt is too long: 208656 tokens > 200000 maximum'}}",
        ),
        (
            "Anthropic Messages",
            "input length and `max_tokens` exceed context limit: 199759 + 8192 > 200000, "
            "decrease input length or `max_tokens` and try again",
        ),
    ],
)
def test_each_providers_too_long_refusal_is_context_too_long(provider: str, message: str) -> None:
    refused = status_error(provider, 400, message, {})
    assert refused.type == CONTEXT_TOO_LONG and refused.non_retryable
    assert status_error(provider, 400, "unknown parameter", {}).type == "ProviderBadRequest"


def test_a_too_long_error_event_mid_stream_is_not_retried_as_a_cut_stream() -> None:
    why = "context_length_exceeded: Your input exceeds the context window of this model."
    assert stream_cut("OpenAI Responses", why).type == CONTEXT_TOO_LONG
    assert stream_cut("OpenAI Responses", "server_error: overloaded").type == "ProviderStreamCut"
