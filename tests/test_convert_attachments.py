"""Images and files in each wire format: carried where the format can, refused in one line where
it cannot, and brought back unchanged."""

from __future__ import annotations

import base64

import pytest

from durable_agent import (
    AssistantMessage,
    File,
    Image,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from durable_agent.activities.providers.convert import (
    UnsupportedContent,
    from_anthropic,
    from_openai_chat,
    from_openai_responses,
    to_anthropic,
    to_openai_chat,
    to_openai_responses,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF"
PNG_B64 = base64.b64encode(PNG).decode()


def conversation(user: list[Image | File], tool: list[Image | File]) -> list[Message]:
    return [
        UserMessage(content="What is in these?", attachments=user),
        AssistantMessage(tool_calls=[ToolCall(id="c1", name="render", arguments="{}")]),
        ToolMessage(tool_call_id="c1", name="render", content="the chart", attachments=tool),
        AssistantMessage(content="A chart."),
    ]


def test_responses_carries_every_kind_in_user_messages_and_tool_results() -> None:
    items = conversation(
        [
            Image(url="https://example.com/cat.png"),
            Image(data=PNG, media_type="image/png"),
            Image(file_id="file-img"),
            File(data=PDF, media_type="application/pdf", filename="report.pdf"),
            File(url="https://example.com/report.pdf"),
            File(file_id="file-pdf"),
        ],
        [Image(data=PNG, media_type="image/png"), File(file_id="file-2")],
    )
    wire = to_openai_responses(items)
    parts = wire[0]["content"]
    assert parts[0] == {"type": "input_text", "text": "What is in these?"}
    assert parts[2] == {
        "type": "input_image",
        "detail": "auto",
        "image_url": f"data:image/png;base64,{PNG_B64}",
    }
    assert parts[4]["file_data"].startswith("data:application/pdf;base64,")
    assert [p["type"] for p in wire[2]["output"]] == ["input_text", "input_image", "input_file"]
    assert from_openai_responses(wire) == items


def test_chat_completions_carries_user_images_and_files() -> None:
    user: list[Image | File] = [
        Image(url="https://example.com/cat.png"),
        Image(data=PNG, media_type="image/png"),
        File(data=PDF, media_type="application/pdf", filename="report.pdf"),
        File(file_id="file-pdf"),
    ]
    items = conversation(user, [])
    wire = to_openai_chat(items)
    assert wire[0]["content"][1] == {"type": "image_url", "image_url": {"url": user[0].url}}
    assert wire[0]["content"][3]["file"]["filename"] == "report.pdf"
    assert wire[2]["content"] == "the chart"  # plain text stays a string
    assert from_openai_chat(wire) == items


def test_anthropic_carries_images_and_documents_in_user_turns_and_tool_results() -> None:
    items = conversation(
        [
            Image(url="https://example.com/cat.png"),
            Image(data=PNG, media_type="image/png"),
            Image(file_id="file-img"),
            File(data=PDF, media_type="application/pdf", filename="report.pdf"),
            File(url="https://example.com/report.pdf"),
            File(file_id="file-pdf"),
            File(data=b"plain notes", media_type="text/plain"),
        ],
        [Image(data=PNG, media_type="image/png"), File(data=PDF, media_type="application/pdf")],
    )
    _, messages = to_anthropic(items)
    blocks = messages[0]["content"]
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
    }
    assert blocks[4]["type"] == "document" and blocks[4]["title"] == "report.pdf"
    assert blocks[7]["source"] == {
        "type": "text",
        "media_type": "text/plain",
        "data": "plain notes",
    }
    result = messages[2]["content"][0]["content"]
    assert [b["type"] for b in result] == ["text", "image", "document"]
    assert from_anthropic(*to_anthropic(items)) == items


def test_a_message_of_attachments_only_sends_no_empty_text() -> None:
    only = [UserMessage(content="", attachments=[Image(url="https://example.com/a.png")])]
    assert [b["type"] for b in to_anthropic(only).messages[0]["content"]] == ["image"]
    assert [p["type"] for p in to_openai_chat(only)[0]["content"]] == ["image_url"]
    assert [p["type"] for p in to_openai_responses(only)[0]["content"]] == ["input_image"]
    assert from_anthropic(*to_anthropic(only)) == only


def test_an_image_crosses_from_one_format_to_another() -> None:
    """A history brought from Anthropic goes to an OpenAI model with its image."""
    anthropic_history = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe it."},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                },
            ],
        }
    ]
    wire = to_openai_responses(from_anthropic(anthropic_history))
    assert wire[0]["content"][1]["image_url"] == f"data:image/png;base64,{PNG_B64}"


@pytest.mark.parametrize(
    ("items", "convert", "says"),
    [
        (
            [UserMessage(content="x", attachments=[Image(file_id="file-1")])],
            to_openai_chat,
            "Chat Completions cannot take an image by file id",
        ),
        (
            [UserMessage(content="x", attachments=[File(url="https://example.com/a.pdf")])],
            to_openai_chat,
            "Chat Completions cannot take a file by URL",
        ),
        (
            conversation([], [Image(url="https://example.com/a.png")]),
            to_openai_chat,
            "Chat Completions tool results carry text only",
        ),
        (
            [
                UserMessage(
                    content="x", attachments=[File(data=b"PK", media_type="application/zip")]
                )
            ],
            to_anthropic,
            "Anthropic Messages takes documents as PDF or plain text",
        ),
        (
            [UserMessage(content="x", attachments=[Image(stored="abc", media_type="image/png")])],
            to_openai_responses,
            "must be resolved first",
        ),
    ],
)
def test_what_a_format_cannot_carry_is_refused_in_one_line(
    items: list[Message], convert: object, says: str
) -> None:
    with pytest.raises(UnsupportedContent) as refused:
        convert(items)  # type: ignore[operator]
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_attachment_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        Image(url="https://example.com/a.png", file_id="f")
    with pytest.raises(ValueError, match="needs a media_type"):
        Image(data=PNG)
    with pytest.raises(ValueError, match="must be base64"):
        Image(url="data:image/png,rawtext")
    data_url = Image(url=f"data:image/png;base64,{PNG_B64}")
    assert (data_url.data, data_url.media_type, data_url.url) == (PNG, "image/png", None)
    # JSON carries bytes as base64, and reads them back.
    assert Image.model_validate_json(data_url.model_dump_json()) == data_url
    assert PNG_B64 in data_url.model_dump_json()
