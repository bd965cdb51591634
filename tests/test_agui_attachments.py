"""Images and documents over AG-UI (`POST /agents/{agent}/agui`): AG-UI 1.0's media parts in a
user message and in a resume payload reach the model request the local model server reads, with
large bytes in payload storage; the parts we cannot carry are a one-line 422 before any event.
Real HTTP on loopback against `serve`, a dev server and a worker, the real OpenAI SDK."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
from ag_ui.core import (
    DataSource,
    ImagePart,
    RunAgentInput,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    TextPart,
    UserMessage,
)
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, external_tool
from durable_agent import UserMessage as RunUserMessage
from durable_agent.client import AgentClient
from durable_agent.serve import create_app

from .conftest import agent_client, new_id
from .fake_llm_content import Seen
from .fake_llm_server import FakeLLMServer, text, tool_calls
from .test_agui import assistant_text, post_run
from .test_serve import http_server

PICTURE = os.urandom(30_000)
"""Over the 16 KiB kept inline: its bytes go to payload storage."""
PICTURE_B64 = base64.b64encode(PICTURE).decode()


@external_tool()
def take_photo(subject: str) -> str:
    """Ask the person to photograph something.

    Args:
        subject: What to photograph.
    """
    raise NotImplementedError


viewer = Agent("agui-viewer", model="openai:fake-model", tools=[take_photo])


@asynccontextmanager
async def viewer_server(env: WorkflowEnvironment) -> AsyncIterator[tuple[str, AgentClient]]:
    async with (
        agent_client(env.client, viewer, max_cached_workflows=100) as (client, _),
        http_server(create_app(client)) as url,
    ):
        yield url, client


def image() -> ImagePart:
    return ImagePart(source=DataSource(value=PICTURE_B64, mime_type="image/png"))


def with_parts(thread: str, parts: list[Any], **fields: Any) -> dict[str, Any]:
    """A `RunAgentInput` whose one user message is `parts`, as an AG-UI client sends it."""
    message = UserMessage(id="m0", content=parts)
    built = RunAgentInput(
        thread_id=thread, run_id=f"run-{uuid.uuid4().hex[:8]}", messages=[message], **fields
    )
    return built.model_dump(mode="json", by_alias=True, exclude_none=True)


async def test_an_image_in_a_user_message_reaches_the_model_and_its_bytes_go_to_storage(
    dev_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    server.reply(text("A noisy picture."))
    async with viewer_server(dev_env) as (url, client):
        thread = new_id()
        parts = [TextPart(text="What is it?"), image()]
        events = await post_run(url, "agui-viewer", with_parts(thread, parts))
        history = await client.history(thread)
        await client.cancel(thread)

    assert assistant_text(events) == ["A noisy picture."]
    assert isinstance(events[-1], RunFinishedEvent) and events[-1].outcome is None
    [request] = server.requests
    assert request.attachments == [Seen("user", "image", "bytes", PICTURE_B64, "image/png")]
    [asked] = [i for i in history.items if isinstance(i, RunUserMessage)]
    assert asked.content == "What is it?"
    assert asked.attachments[0].stored is not None, "the run holds a reference, not the bytes"


async def test_a_message_of_an_image_alone_is_taken(
    dev_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    """A picture with no words is a message (it was a 422: "no text")."""
    server.reply(text("A noisy picture."))
    async with viewer_server(dev_env) as (url, client):
        thread = new_id()
        events = await post_run(url, "agui-viewer", with_parts(thread, [image()]))
        await client.cancel(thread)

    assert assistant_text(events) == ["A noisy picture."]
    [request] = server.requests
    assert request.attachments == [Seen("user", "image", "bytes", PICTURE_B64, "image/png")]


async def test_an_image_in_a_resume_payload_reaches_the_model_with_the_calls_result(
    dev_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    """A resume whose second entry has a part we cannot carry is refused whole: both calls
    still wait. Answered again, the first call's image reaches the next model request."""
    server.reply(
        tool_calls(
            ("p1", "take_photo", '{"subject": "the meter"}'),
            ("p2", "take_photo", '{"subject": "the door"}'),
        ),
        text("It reads 42."),
    )
    photo = image().model_dump(mode="json", by_alias=True, exclude_none=True)
    audio = {**photo, "type": "audio"}

    def entry(call: str, attachments: list[Any]) -> dict[str, Any]:
        payload = {"content": f"{call} here", "attachments": attachments}
        return {"interruptId": call, "status": "resolved", "payload": payload}

    async with viewer_server(dev_env) as (url, client):
        thread = new_id()
        asked = await post_run(url, "agui-viewer", with_parts(thread, [TextPart(text="Meter?")]))
        wrong = with_parts(thread, [], resume=[entry("p1", [photo]), entry("p2", [audio])])
        async with httpx.AsyncClient(timeout=30) as http:
            refused = await http.post(f"{url}/agents/agui-viewer/agui", json=wrong)
        still = await client.pending(thread)
        right = with_parts(thread, [], resume=[entry("p1", [photo]), entry("p2", [])])
        resumed = await post_run(url, "agui-viewer", right)
        await client.cancel(thread)

    finished = asked[-1]
    assert isinstance(finished, RunFinishedEvent)
    assert isinstance(finished.outcome, RunFinishedInterruptOutcome), finished
    schema = finished.outcome.interrupts[0].response_schema
    assert schema is not None and "attachments" in schema["properties"]
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == (
        "resume entry 'p2': payload.attachments[0]: audio parts are not supported"
        " (images and documents are)"
    )
    assert {p.tool_call_id for p in still} == {"p1", "p2"}, "nothing was applied"
    assert assistant_text(resumed) == ["It reads 42."]
    assert server.requests[1].attachments == [
        Seen("tool", "image", "bytes", PICTURE_B64, "image/png")
    ]


async def test_parts_we_cannot_carry_are_one_line_422s_and_start_nothing(
    dev_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    """Audio, a URL no provider can fetch, and bytes that are not base64."""
    source = {"type": "data", "value": PICTURE_B64, "mimeType": "audio/wav"}
    cases = {
        "audio parts are not supported": {"type": "audio", "source": source},
        "a provider cannot fetch 'file:///etc/hosts'": {
            "type": "image",
            "source": {"type": "url", "value": "file:///etc/hosts"},
        },
        "the data source's base64 is not valid": {
            "type": "image",
            "source": {"type": "data", "value": "not base64!", "mimeType": "image/png"},
        },
    }
    answers = {}
    async with viewer_server(dev_env) as (url, client), httpx.AsyncClient(timeout=30) as http:
        for words, part in cases.items():
            body = with_parts(new_id(), [TextPart(text="Look.")])
            body["messages"][0]["content"].append(part)
            answers[words] = await http.post(f"{url}/agents/agui-viewer/agui", json=body)
            assert await client.find(body["threadId"]) is None, words

    for words, answer in answers.items():
        assert answer.status_code == 422, answer.text
        detail = answer.json()["error"]
        assert detail.startswith("messages[0].content[1]: ") and words in detail, detail
        assert "\n" not in detail
    assert server.requests == []
