"""Images and files reach each API through the real `openai` and `anthropic` clients, streamed and
not: the local server reads them out of the request as that API defines them (and refuses what
it would refuse)."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence

import pytest

from durable_agent import (
    AssistantMessage,
    File,
    Image,
    ModelRequest,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from durable_agent.activities.providers.convert import UnsupportedContent

from .fake_llm_content import BadRequest, Seen, attachments
from .fake_llm_server import FakeLLMServer, text
from .test_provider_streaming import Recorder
from .test_providers import ENDPOINT, PROVIDERS

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF"
B64 = {PNG: base64.b64encode(PNG).decode(), PDF: base64.b64encode(PDF).decode()}
URL = "https://example.com/cat.png"
PNG_IMAGE = Image(data=PNG, media_type="image/png")
PNG_SEEN = Seen("user", "image", "bytes", B64[PNG], "image/png")

# What each API can take in a user message, and how the server reads it back.
USER: dict[str, list[tuple[Image | File, Seen]]] = {
    "responses": [
        (Image(url=URL), Seen("user", "image", "url", URL)),
        (
            Image(data=PNG, media_type="image/png"),
            Seen("user", "image", "bytes", B64[PNG], "image/png"),
        ),
        (Image(file_id="file-1"), Seen("user", "image", "file_id", "file-1")),
        (
            File(data=PDF, media_type="application/pdf", filename="a.pdf"),
            Seen("user", "file", "bytes", B64[PDF], "application/pdf"),
        ),
        (File(file_id="file-2"), Seen("user", "file", "file_id", "file-2")),
    ],
    "chat": [
        (Image(url=URL), Seen("user", "image", "url", URL)),
        (
            Image(data=PNG, media_type="image/png"),
            Seen("user", "image", "bytes", B64[PNG], "image/png"),
        ),
        (
            File(data=PDF, media_type="application/pdf"),
            Seen("user", "file", "bytes", B64[PDF], "application/pdf"),
        ),
        (File(file_id="file-2"), Seen("user", "file", "file_id", "file-2")),
    ],
    "anthropic": [
        (Image(url=URL), Seen("user", "image", "url", URL)),
        (
            Image(data=PNG, media_type="image/png"),
            Seen("user", "image", "bytes", B64[PNG], "image/png"),
        ),
        (Image(file_id="file-1"), Seen("user", "image", "file_id", "file-1")),
        (
            File(data=PDF, media_type="application/pdf", filename="a.pdf"),
            Seen("user", "file", "bytes", B64[PDF], "application/pdf"),
        ),
        (File(file_id="file-2"), Seen("user", "file", "file_id", "file-2")),
    ],
}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as s:
        yield s


def with_attachments(user: Sequence[Image | File], tool: Sequence[Image | File]) -> ModelRequest:
    return ModelRequest(
        model="x:fake-model",
        messages=[
            UserMessage(content="What do you see?", attachments=list(user)),
            AssistantMessage(tool_calls=[ToolCall(id="c1", name="chart", arguments="{}")]),
            ToolMessage(tool_call_id="c1", name="chart", content="drawn", attachments=list(tool)),
        ],
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_user_attachments_reach_each_api(
    server: FakeLLMServer, kind: str, streamed: bool
) -> None:
    server.reply(text("A cat and a report."))
    parts = [a for a, _ in USER[kind]]
    provider = PROVIDERS[kind](server)
    sink = Recorder() if streamed else None
    response = await provider.complete(with_attachments(parts, []), "fake-model", sink)
    assert response.message.content == "A cat and a report."
    [sent] = server.requests
    assert sent.path == ENDPOINT[kind] and sent.body.get("stream", False) is streamed
    assert sent.attachments == [seen for _, seen in USER[kind]]


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", ["responses", "anthropic"])
async def test_a_tool_result_carries_its_image_where_the_api_allows(
    server: FakeLLMServer, kind: str, streamed: bool
) -> None:
    server.reply(text("A bar chart."))
    tool: list[Image | File] = [
        Image(data=PNG, media_type="image/png"),
        File(data=PDF, media_type="application/pdf"),
    ]
    sink = Recorder() if streamed else None
    await PROVIDERS[kind](server).complete(with_attachments([], tool), "fake-model", sink)
    assert server.requests[0].attachments == [
        Seen("tool", "image", "bytes", B64[PNG], "image/png"),
        Seen("tool", "file", "bytes", B64[PDF], "application/pdf"),
    ]


async def test_chat_completions_refuses_a_tool_image_before_sending(
    server: FakeLLMServer,
) -> None:
    tool = [Image(url=URL)]
    with pytest.raises(UnsupportedContent, match="Chat Completions tool results carry text only"):
        await PROVIDERS["chat"](server).complete(with_attachments([], tool), "fake-model")
    assert server.requests == []


def test_the_server_refuses_what_each_api_refuses() -> None:
    """The checks can fail: shapes the real APIs answer with a 400."""
    tool_image = {
        "messages": [
            {"role": "tool", "tool_call_id": "c", "content": [{"type": "image_url"}]},
        ]
    }
    with pytest.raises(BadRequest, match="tool messages take text parts only"):
        attachments("/v1/chat/completions", tool_image)
    bad_bytes = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "%%"},
                    }
                ],
            }
        ]
    }
    with pytest.raises(BadRequest, match="base64"):
        attachments("/v1/messages", bad_bytes)
    word = {"input": [{"role": "user", "content": [{"type": "input_file"}]}]}
    with pytest.raises(BadRequest, match="input_file needs"):
        attachments("/v1/responses", word)
