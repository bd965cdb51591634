"""Images and files that come with an answer: a waiting call's result given by the client, the
CLI or `serve`, and an interrupt's message. Real worker, client, CLI processes and HTTP, the
real provider SDKs against the local model server, which reads each attachment out of the
request as its API defines it."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import httpx2 as httpx
import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    File,
    Image,
    RunState,
    ToolMessage,
    UserMessage,
    external_tool,
)
from durable_agent.serve import create_app

from .conftest import agent_client, run_error
from .fake_llm_content import Seen
from .fake_llm_server import FakeLLMServer, text, tool_calls
from .helpers import refusal, wait_ignored, wait_pending, wait_state
from .test_attachments import PDF_TYPE, history_bytes
from .test_cli import cli
from .test_serve import http_server

PHOTO = os.urandom(300_000)
"""Over the inline threshold: it goes to payload storage, and the run keeps a reference."""


@external_tool()
def take_photo(subject: str) -> str:
    """Ask a person to photograph something.

    Args:
        subject: What to photograph.
    """
    raise NotImplementedError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _photographer(model: str) -> Agent:
    return Agent("photographer", model=model, tools=[take_photo])


@pytest.mark.parametrize("prefix", ["openai", "anthropic"])
async def test_a_resolved_calls_image_reaches_the_model_with_its_result(
    time_env: WorkflowEnvironment, server: FakeLLMServer, prefix: str
) -> None:
    """Responses and Messages carry images in a tool result: the model reads the photo the
    person attached to the call's answer; the run holds it by reference."""
    server.reply(tool_calls(("c1", "take_photo", '{"subject": "the cat"}')), text("A cat."))
    async with agent_client(time_env.client, _photographer(f"{prefix}:fake-model")) as (
        client,
        _,
    ):
        handle = await client.start("photographer", "What does the cat look like?")
        await wait_pending(client, handle.id, ids=["c1"])
        photo = Image(data=PHOTO, media_type="image/jpeg")
        answer = await client.resolve(handle.id, "c1", "Here it is.", attachments=[photo])
        result = await handle.result()
        history = [e async for e in handle.fetch_history_events()]
    assert answer.accepted and result.final_text == "A cat."
    assert server.requests[0].attachments == []
    assert server.requests[1].attachments == [
        Seen("tool", "image", "bytes", _b64(PHOTO), "image/jpeg")
    ]
    [kept] = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert kept.content == "Here it is." and kept.attachments[0].stored is not None
    assert history_bytes(history) < 100_000, "the run holds a reference, not the bytes"


async def test_chat_completions_refuses_a_resolved_calls_image_with_one_line(
    time_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    """Chat Completions tool messages take text only: the converter's rule, as for a tool's
    own `return Image(...)`, and no request is made."""
    server.reply(tool_calls(("c1", "take_photo", '{"subject": "the cat"}')), text("A cat."))
    async with agent_client(time_env.client, _photographer("openai-chat:fake-model")) as (
        client,
        _,
    ):
        handle = await client.start("photographer", "What does the cat look like?")
        await wait_pending(client, handle.id, ids=["c1"])
        photo = Image(data=b"tiny", media_type="image/png")
        await client.resolve(handle.id, "c1", "Here it is.", attachments=[photo])
        error = await run_error(handle)
    assert "Chat Completions tool results carry text only" in str(error)
    assert len(server.requests) == 1, "refused before the second request"


async def test_a_raw_signal_or_update_with_a_bad_attachment_is_refused_and_the_call_waits(
    time_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    """As a `temporal workflow signal` user would send it: a malformed attachment is a
    `signal_ignored` event (a refused update for the update), never a stuck run; a good one,
    by URL, reaches the model."""
    server.reply(tool_calls(("c1", "take_photo", '{"subject": "the cat"}')), text("A cat."))
    bad = {"tool_call_id": "c1", "content": "x", "attachments": [{"type": "image"}]}
    async with agent_client(time_env.client, _photographer("anthropic:fake-model")) as (
        client,
        _,
    ):
        handle = await client.start("photographer", "What does the cat look like?")
        await wait_pending(client, handle.id, ids=["c1"])
        await handle.signal("tool_result", bad)
        [ignored] = await wait_ignored(client, handle.id, 1)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("submit_tool_result", bad)
        await wait_pending(client, handle.id, ids=["c1"])  # still waiting, untouched
        photo = {"type": "image", "url": "https://example.com/cat.jpg"}
        good = {"tool_call_id": "c1", "content": "the photo", "attachments": [photo]}
        await handle.signal("tool_result", good)
        result = await handle.result()
    assert "exactly one of url, data, file_id or stored" in ignored["reason"]
    assert "exactly one of url, data, file_id or stored" in refusal(refused)
    assert result.final_text == "A cat."
    assert server.requests[1].attachments == [
        Seen("tool", "image", "url", "https://example.com/cat.jpg")
    ]


async def test_the_cli_resolves_a_call_and_interrupts_with_files(
    dev_env: WorkflowEnvironment, server: FakeLLMServer, tmp_path: Path
) -> None:
    """`resolve ... --file PATH` and `interrupt ... --file PATH`, from other processes: the
    bytes reach the model (the large one through payload storage)."""
    photo = tmp_path / "cat.png"
    photo.write_bytes(PHOTO)
    report = tmp_path / "vet.pdf"
    report.write_bytes(b"%PDF-1.4\n%%EOF")
    server.reply(
        tool_calls(("c1", "take_photo", '{"subject": "the cat"}')),
        text("A cat."),
        text("A healthy cat."),
    )
    agent = _photographer("anthropic:fake-model")
    address = dev_env.client.service_client.config.target_host
    async with agent_client(dev_env.client, agent) as (client, worker):
        handle = await client.start("photographer", "Photograph the cat.", conversation=True)
        await wait_pending(client, handle.id, ids=["c1"])
        resolved = await asyncio.to_thread(
            cli, address, worker.task_queue, "resolve", handle.id, "c1", '"the photo"',
            "--file", str(photo),
        )  # fmt: skip
        await wait_state(client, handle.id, RunState.WAITING_FOR_USER, turn=2)
        interrupted = await asyncio.to_thread(
            cli, address, worker.task_queue, "interrupt", handle.id, "And the vet's report?",
            "--file", str(report),
        )  # fmt: skip
        await wait_state(client, handle.id, RunState.WAITING_FOR_USER, turn=3)
        printed = await asyncio.to_thread(cli, address, worker.task_queue, "history", handle.id)
        await client.cancel(handle.id)
    assert '"accepted": true' in resolved.stdout, resolved.stdout
    assert "+ image image/png" in printed.stdout, "the CLI names what a message carries"
    assert "+ file vet.pdf" in printed.stdout, printed.stdout
    assert "queued" in interrupted.stdout or "answered next" in interrupted.stdout
    _, second, third = server.requests
    assert second.attachments == [Seen("tool", "image", "bytes", _b64(PHOTO), "image/png")]
    report_seen = Seen("user", "file", "bytes", _b64(report.read_bytes()), PDF_TYPE)
    assert third.attachments == [second.attachments[0], report_seen]


async def test_serve_resolves_a_call_and_interrupts_with_data_urls(
    dev_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    """`POST .../calls/{id}/resolve` and `POST .../interrupt` take `attachments` as
    `POST .../messages` does; a malformed one is a 422 and the call still waits."""
    photo_url = f"data:image/png;base64,{_b64(PHOTO)}"
    server.reply(
        tool_calls(("c1", "take_photo", '{"subject": "the cat"}')),
        text("A cat."),
        text("A report."),
    )
    agent = _photographer("openai:fake-model")
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("photographer", "Photograph the cat.", conversation=True)
        await wait_pending(client, handle.id, ids=["c1"])
        async with (
            http_server(create_app(client)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as http,
        ):
            call = f"/runs/{handle.id}/calls/c1/resolve"
            bad = await http.post(
                call, json={"content": "x", "attachments": [{"type": "image", "url": "data:x"}]}
            )
            await wait_pending(client, handle.id, ids=["c1"])
            resolved = await http.post(
                call,
                json={"content": "the photo", "attachments": [{"type": "image", "url": photo_url}]},
            )
            await wait_state(client, handle.id, RunState.WAITING_FOR_USER, turn=2)
            pdf = {"type": "file", "url": "https://example.com/vet.pdf", "filename": "vet.pdf"}
            interrupted = await http.post(
                f"/runs/{handle.id}/interrupt",
                json={"content": "And this report?", "attachments": [pdf]},
            )
            await wait_state(client, handle.id, RunState.WAITING_FOR_USER, turn=3)
        history = await client.history(handle.id)
        await client.cancel(handle.id)
    assert bad.status_code == 422 and "must be base64" in bad.text
    assert resolved.status_code == 200 and resolved.json()["accepted"], resolved.text
    assert interrupted.status_code == 200, interrupted.text
    _, second, third = server.requests
    assert second.attachments == [Seen("tool", "image", "bytes", _b64(PHOTO), "image/png")]
    assert third.attachments[-1] == Seen("user", "file", "url", "https://example.com/vet.pdf")
    [tool_result] = [i for i in history.items if isinstance(i, ToolMessage)]
    assert tool_result.attachments[0].stored is not None, "a data URL's bytes go to storage"
    [asked] = [i for i in history.items if isinstance(i, UserMessage) and i.attachments]
    assert asked.attachments == [File(url="https://example.com/vet.pdf", filename="vet.pdf")]


async def test_a_threads_message_carries_files_from_the_cli_and_serve(
    dev_env: WorkflowEnvironment, server: FakeLLMServer, tmp_path: Path
) -> None:
    """`run --thread ID --file PATH` and `POST /runs` with `thread_id` and `attachments`
    (update-with-start, `AgentClient.send`): the first starts the conversation with the file,
    the second adds a message with an image to it."""
    report = tmp_path / "vet.pdf"
    report.write_bytes(b"%PDF-1.4\n%%EOF")
    server.reply(text("A report."), text("A cat."))
    agent = Agent("threader", model="anthropic:fake-model")
    address = dev_env.client.service_client.config.target_host
    thread = f"thread-{os.urandom(4).hex()}"
    async with agent_client(dev_env.client, agent) as (client, worker):
        ran = await asyncio.to_thread(
            cli, address, worker.task_queue, "run", "threader", "Read this.",
            "--thread", thread, "--file", str(report), "--no-stream",
        )  # fmt: skip
        async with (
            http_server(create_app(client)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as http,
        ):
            photo = {"type": "image", "url": f"data:image/png;base64,{_b64(PHOTO)}"}
            body = {"agent": "threader", "prompt": "And this?", "thread_id": thread}
            sent = await http.post("/runs", json=body | {"attachments": [photo]})
            await wait_state(client, thread, RunState.WAITING_FOR_USER, turn=2)
        await client.cancel(thread)
    assert "A report." in ran.stdout, ran.stdout + ran.stderr
    assert sent.status_code == 200 and sent.json()["workflow_id"] == thread, sent.text
    pdf = Seen("user", "file", "bytes", _b64(report.read_bytes()), PDF_TYPE)
    assert server.requests[0].attachments == [pdf]
    image = Seen("user", "image", "bytes", _b64(PHOTO), "image/png")
    assert server.requests[1].attachments == [pdf, image]
