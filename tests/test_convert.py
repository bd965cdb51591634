"""The neutral conversation to and from OpenAI and Anthropic wire formats."""

from __future__ import annotations

import itertools

import pytest

import durable_agent.convert as public_convert
from durable_agent import (
    AssistantMessage,
    Image,
    Message,
    StatusEvent,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from durable_agent.activities.providers import convert as providers_convert
from durable_agent.activities.providers.convert import (
    from_anthropic,
    from_openai_chat,
    from_openai_responses,
    to_anthropic,
    to_openai_chat,
    to_openai_responses,
)

# Tool results carry their tool's name, as the workflow records them: every format gives it back.
CONVERSATION: list[Message] = [
    SystemMessage(content="Be brief."),
    UserMessage(content="Weather in Paris and Rome?"),
    AssistantMessage(
        content="Checking.",
        tool_calls=[
            ToolCall(id="call_1", name="weather", arguments='{"city": "Paris"}'),
            ToolCall(id="call_2", name="weather", arguments='{"city": "Rome"}'),
        ],
    ),
    ToolMessage(tool_call_id="call_1", name="weather", content="sunny"),
    ToolMessage(tool_call_id="call_2", name="weather", content="rain"),
    UserMessage(content="And tomorrow?"),
    AssistantMessage(tool_calls=[ToolCall(id="call_3", name="weather", arguments="{}")]),
    ToolMessage(tool_call_id="call_3", name="weather", content="no data", is_error=True),
    AssistantMessage(content="Paris sunny, Rome rain."),
]


def test_openai_chat_round_trip() -> None:
    assert from_openai_chat(to_openai_chat(CONVERSATION)) == CONVERSATION


def test_openai_responses_round_trip() -> None:
    assert from_openai_responses(to_openai_responses(CONVERSATION)) == CONVERSATION


def test_anthropic_round_trip_and_alternation() -> None:
    system, messages = to_anthropic(CONVERSATION)
    assert system == "Be brief."
    roles = [m["role"] for m in messages]
    assert all(a != b for a, b in itertools.pairwise(roles)), roles
    # Both tool results and the next user text share one user turn.
    merged = messages[2]["content"]
    assert [b["type"] for b in merged] == ["tool_result", "tool_result", "text"]
    assert [b.get("tool_use_id") for b in merged[:2]] == ["call_1", "call_2"]
    # Anthropic carries arguments as objects: they come back as equivalent, re-serialised JSON.
    assert from_anthropic(*to_anthropic(CONVERSATION)) == CONVERSATION
    assert from_anthropic(system, messages) == CONVERSATION
    assert to_anthropic(CONVERSATION).messages == messages


def test_from_anthropic_still_takes_the_order_of_earlier_versions() -> None:
    """Callers written for `from_anthropic(messages, system=None)` keep working."""
    system, messages = to_anthropic(CONVERSATION)
    assert from_anthropic(messages, system=system) == CONVERSATION
    assert from_anthropic(messages, system) == CONVERSATION
    assert from_anthropic(messages=messages, system=system) == CONVERSATION
    assert from_anthropic(messages) == CONVERSATION[1:]
    assert from_anthropic(None, messages) == CONVERSATION[1:]
    with pytest.raises(TypeError):
        from_anthropic("Be brief.")  # type: ignore[call-overload]


def test_anthropic_keeps_broken_arguments_and_errors() -> None:
    broken = [
        UserMessage(content="hi"),
        AssistantMessage(tool_calls=[ToolCall(id="t", name="x", arguments='{"a": ')]),
        ToolMessage(tool_call_id="t", name="x", content="invalid arguments", is_error=True),
    ]
    _, messages = to_anthropic(broken)
    assert messages[1]["content"][0]["input"] == {"_raw_arguments": '{"a": '}
    assert messages[2]["content"][0]["is_error"] is True
    assert from_anthropic(messages) == broken


def test_openai_models_read_an_error_result_as_one() -> None:
    """Regression: OpenAI's wires have no `is_error`; an error result looked like a success."""
    errors = [
        UserMessage(content="hi"),
        AssistantMessage(
            tool_calls=[ToolCall(id="a", name="f", arguments="{}"), ToolCall(id="b", name="f")]
        ),
        ToolMessage(tool_call_id="a", name="f", content="tool f failed: boom", is_error=True),
        ToolMessage(tool_call_id="b", name="f", content="Error: already says so", is_error=True),
    ]
    chat = to_openai_chat(errors)
    assert [m["content"] for m in chat[2:]] == [
        "Error: tool f failed: boom",
        "Error: already says so",
    ]
    responses = to_openai_responses(errors)
    assert responses[-2]["output"] == "Error: tool f failed: boom"
    assert responses[-1]["output"] == "Error: already says so"
    # Back, the prefix marks an error again; an error's own prefix is the one thing lost.
    back = from_openai_chat(chat)
    assert back[:3] == errors[:3] == from_openai_responses(responses)[:3]
    assert back[3] == ToolMessage(
        tool_call_id="b", name="f", content="already says so", is_error=True
    )


@pytest.mark.parametrize("convert", [to_openai_chat, to_openai_responses])
def test_status_events_are_dropped(convert: object) -> None:
    items = [UserMessage(content="hi"), StatusEvent(source="agent", kind="turn_started")]
    assert "turn_started" not in str(convert(items))  # type: ignore[operator]
    assert "turn_started" not in str(to_anthropic(items))


def test_import_of_external_histories() -> None:
    chat = [
        {"role": "developer", "content": [{"type": "text", "text": "Rules."}]},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "done"},
    ]
    assert [type(m).__name__ for m in from_openai_chat(chat)] == [
        "SystemMessage",
        "UserMessage",
        "AssistantMessage",
        "ToolMessage",
    ]
    responses = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "reasoning", "id": "r", "summary": []},
        {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": "1"},
        {"type": "function_call_output", "call_id": "b", "output": "2"},
    ]
    imported = from_openai_responses(responses)
    assert isinstance(imported[1], AssistantMessage)
    assert [c.id for c in imported[1].tool_calls] == ["a", "b"]


def test_the_public_convert_module_names_everything_the_providers_convert_module_does() -> None:
    """`durable_agent.convert` lacked `UnsupportedContent`: a user catching the refusal had to
    import it from the activities' private path."""
    assert sorted(public_convert.__all__) == sorted(providers_convert.__all__)
    for name in providers_convert.__all__:
        assert getattr(public_convert, name) is getattr(providers_convert, name)
    with pytest.raises(public_convert.UnsupportedContent, match="file id"):
        to_openai_chat([UserMessage(content="x", attachments=[Image(file_id="file-1")])])
