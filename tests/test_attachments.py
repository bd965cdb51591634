"""Images and files through whole runs: a real worker and client, the real provider SDKs, and a
local server that reads each attachment out of the request as its API defines it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import httpx2 as httpx
import pytest
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.converter import ExternalStorage
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from durable_agent import (
    Agent,
    File,
    HookContext,
    HookResult,
    Image,
    ToolContext,
    ToolMessage,
    UserMessage,
    hook,
    tool,
)
from durable_agent.activities.attachments import StoredBytes, offload
from durable_agent.activities.tools import tool_activity
from durable_agent.activities.transcripts import TranscriptCache
from durable_agent.encryption import EncryptionCodec, KeyRing, generate_key
from durable_agent.serve import create_app
from durable_agent.storage import PAYLOAD_DIR_VARIABLE, LocalFileDriver, data_converter
from durable_agent.wire import ToolInvocation, ToolOutcome

from .conftest import agent_client, eventually, run_error
from .fake_llm_content import Seen
from .fake_llm_server import FakeLLMServer, text, tool_calls
from .test_cli import cli
from .test_serve import http_server

FIVE_MB = os.urandom(5 * 1024 * 1024)
PDF_TYPE = "application/pdf"


@tool
def look_again() -> str:
    """Look at the picture once more."""
    return "looked"


def history_bytes(events: Sequence[HistoryEvent]) -> int:
    return sum(len(e.SerializeToString()) for e in events)


def large_files_since(started: float) -> list[Path]:
    directory = Path(os.environ[PAYLOAD_DIR_VARIABLE])
    return [
        p for p in directory.iterdir() if p.stat().st_mtime >= started and p.stat().st_size > 1e6
    ]


@pytest.mark.parametrize("prefix", ["openai", "openai-chat", "anthropic"])
async def test_a_5_mb_image_is_stored_once_and_every_model_call_sees_it(
    time_env: WorkflowEnvironment, server: FakeLLMServer, prefix: str
) -> None:
    turns = 8
    server.reply(*[tool_calls((f"c{n}", "look_again", "{}")) for n in range(turns - 1)])
    server.reply(text("A picture of noise."))
    agent = Agent("looker", model=f"{prefix}:fake-model", tools=[look_again])
    started = time.time() - 1  # file times have a coarse clock
    picture = Image(data=os.urandom(5 * 1024 * 1024), media_type="image/png")
    async with agent_client(time_env.client, agent) as (client, _):
        message = UserMessage(content="What is this?", attachments=[picture])
        handle = await client.start("looker", messages=[message])
        result = await handle.result()
        history = [e async for e in handle.fetch_history_events()]
    assert result.final_text == "A picture of noise."
    assert picture.data is not None
    seen = Seen("user", "image", "bytes", base64.b64encode(picture.data).decode(), "image/png")
    # One request a turn; a call retried on a busy machine (its heartbeat starved while the
    # in-process fake server parses 7 MB) sends the same request again, which is allowed.
    assert len({json.dumps(r.body, sort_keys=True) for r in server.requests}) == turns
    assert all(r.attachments == [seen] for r in server.requests), "every call carries the bytes"
    kept = result.messages[0]
    assert isinstance(kept, UserMessage) and kept.attachments[0].stored is not None
    assert kept.attachments[0].data is None, "the run holds a reference, not the bytes"
    assert history_bytes(history) < 200_000, "no payload of the run carries the bytes"
    assert len(large_files_since(started)) == 1, "the bytes are stored once"


async def test_what_a_provider_cannot_take_fails_the_call_at_once_with_one_line(
    time_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    agent = Agent("chatty", model="openai-chat:fake-model")
    async with agent_client(time_env.client, agent) as (client, _):
        message = UserMessage(content="Read it.", attachments=[Image(file_id="file-abc")])
        handle = await client.start("chatty", messages=[message])
        error = await run_error(handle)
    assert "UnsupportedContent: Chat Completions cannot take an image by file id" in str(error)
    assert server.requests == [], "refused before any request, and not retried"


async def test_a_tool_returns_an_image_and_its_large_bytes_go_to_storage(
    time_env: WorkflowEnvironment,
) -> None:
    """`return Image(...)` or a list of text and attachments: the outcome carries them, with
    bytes over the threshold as a storage reference the model activity can read back."""

    pdf_url = "https://example.com/report.pdf"

    @tool
    def chart(ctx: ToolContext) -> list[object]:
        """Draw the chart."""
        return ["Here it is.", Image(data=FIVE_MB, media_type="image/png"), File(url=pdf_url)]

    config = time_env.client.config()
    config["data_converter"] = data_converter()
    client = Client(**config)
    run = tool_activity(chart, TranscriptCache())
    outcome: ToolOutcome = await ActivityEnvironment(client=client).run(
        run, ToolInvocation(tool_call_id="c1", name="chart", arguments="{}", agent="a")
    )
    assert outcome.content == "Here it is."
    image, pdf = outcome.attachments
    assert image.stored is not None and image.data is None
    assert pdf == File(url=pdf_url)
    assert len(outcome.model_dump_json()) < 10_000
    # What the model activity does before a provider call: the bytes come back.
    [resolved] = await StoredBytes().resolve(
        lambda: client.data_converter,
        [ToolMessage(tool_call_id="c1", content="", attachments=outcome.attachments)],
    )
    assert isinstance(resolved, ToolMessage)
    assert resolved.attachments[0] == Image(data=FIVE_MB, media_type="image/png")


async def test_the_cli_runs_a_prompt_with_a_file(
    dev_env: WorkflowEnvironment, server: FakeLLMServer, tmp_path: Path
) -> None:
    """`durable-agent run AGENT PROMPT --file PATH`: the file's bytes reach the model (through
    payload storage, from another process); a file that is not there is one line, no run."""
    chart = tmp_path / "chart.png"
    chart.write_bytes(os.urandom(40_000))  # over the inline threshold: stored
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4\n%%EOF")
    server.reply(text("A chart and a report."))
    agent = Agent("reader", model="anthropic:fake-model")
    address = dev_env.client.service_client.config.target_host
    async with agent_client(dev_env.client, agent) as (_, worker):
        ran = await asyncio.to_thread(
            cli, address, worker.task_queue, "run", "reader", "What are these?",
            "--file", str(chart), "--file", str(report), "--no-stream",
        )  # fmt: skip
        missing = await asyncio.to_thread(
            cli, address, worker.task_queue, "run", "reader", "And this?",
            "--file", str(tmp_path / "gone.png"), check=False,
        )  # fmt: skip
    assert "A chart and a report." in ran.stdout
    [sent] = server.requests
    assert sent.attachments == [
        Seen("user", "image", "bytes", base64.b64encode(chart.read_bytes()).decode(), "image/png"),
        Seen("user", "file", "bytes", base64.b64encode(report.read_bytes()).decode(), PDF_TYPE),
    ]
    assert missing.returncode != 0
    assert f"cannot read {tmp_path / 'gone.png'}" in missing.stderr
    assert len(server.requests) == 1, "no run for a missing file"


async def test_serve_takes_images_as_data_urls(
    dev_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    """`POST /runs` with `attachments`: a data URL becomes bytes in storage (the run's history
    holds a reference); a malformed one is a 422 naming the field."""
    picture = os.urandom(30_000)
    data_url = f"data:image/png;base64,{base64.b64encode(picture).decode()}"
    server.reply(text("Noise."))
    agent = Agent("viewer", model="openai:fake-model")
    async with agent_client(dev_env.client, agent) as (client, _):
        app = create_app(client)
        async with (
            http_server(app) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as http,
        ):
            body = {"agent": "viewer", "prompt": "What is it?"}
            started = await http.post(
                "/runs", json=body | {"attachments": [{"type": "image", "url": data_url}]}
            )
            assert started.status_code == 201, started.text
            workflow_id = started.json()["workflow_id"]
            result = await client.handle(workflow_id).result()
            bad = await http.post(
                "/runs", json=body | {"attachments": [{"type": "image", "url": "data:x,y"}]}
            )
    assert result.final_text == "Noise."
    [sent] = server.requests
    assert sent.attachments == [
        Seen("user", "image", "bytes", base64.b64encode(picture).decode(), "image/png")
    ]
    kept = result.messages[0]
    assert isinstance(kept, UserMessage) and kept.attachments[0].stored is not None
    assert bad.status_code == 422 and "must be base64" in bad.text


@hook(name="screenshot_taker")
def screenshot_taker(context: HookContext) -> HookResult | None:
    """After the first reply, shows the model a screenshot (as a person would attach one)."""
    if context.turn == 1:
        shot = Image(data=SCREENSHOT, media_type="image/png")
        return HookResult(inject=[UserMessage(content="Here is the screen.", attachments=[shot])])
    return None


SCREENSHOT = os.urandom(300_000)


async def test_a_hook_injects_an_image_that_reaches_the_model_by_reference(
    time_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    server.reply(tool_calls(("c1", "look_again", "{}")), text("I see the screen."))
    agent = Agent(
        "watcher", model="anthropic:fake-model", tools=[look_again], hooks=[screenshot_taker]
    )
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("watcher", "Watch the screen.")
        result = await handle.result()
        history = [e async for e in handle.fetch_history_events()]
    shot = Seen("user", "image", "bytes", base64.b64encode(SCREENSHOT).decode(), "image/png")
    assert server.requests[0].attachments == []
    assert server.requests[1].attachments == [shot]
    injected = [m for m in result.messages if isinstance(m, UserMessage) and m.attachments]
    assert len(injected) == 1 and injected[0].attachments[0].stored is not None
    assert history_bytes(history) < 100_000


async def test_a_tools_image_reaches_the_next_model_call(
    time_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    @tool
    def snapshot() -> Image:
        """Take a snapshot of the screen."""
        return Image(data=SCREENSHOT, media_type="image/png")

    server.reply(tool_calls(("c1", "snapshot", "{}")), text("A screen."))
    agent = Agent("snapper", model="openai:fake-model", tools=[snapshot])
    async with agent_client(time_env.client, agent) as (client, _):
        result = await (await client.start("snapper", "What is on screen?")).result()
    shot = Seen("tool", "image", "bytes", base64.b64encode(SCREENSHOT).decode(), "image/png")
    assert result.final_text == "A screen."
    assert server.requests[1].attachments == [shot]


async def test_say_with_an_image_reaches_the_next_model_call(
    time_env: WorkflowEnvironment, server: FakeLLMServer
) -> None:
    server.reply(text("Hello."), text("A screen."))
    agent = Agent("talker", model="anthropic:fake-model")
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("talker", "Hi.", conversation=True)
        await eventually(lambda: _answered(server, 1), "the first reply")
        shot = Image(data=SCREENSHOT, media_type="image/png")
        await client.say(handle.id, "What is this?", attachments=[shot])
        await eventually(lambda: _answered(server, 2), "the second reply")
        await client.cancel(handle.id)
    expected = Seen("user", "image", "bytes", base64.b64encode(SCREENSHOT).decode(), "image/png")
    assert server.requests[1].attachments == [expected]


async def _answered(server: FakeLLMServer, calls: int) -> bool:
    return len(server.requests) >= calls


async def test_stored_bytes_are_encrypted_when_encryption_is_on(tmp_path: Path) -> None:
    """The bytes go through the data converter: its codec encrypts them before its storage
    driver writes them, and the model activity's read decrypts them."""
    codec = EncryptionCodec(KeyRing.parse(f"k1:{generate_key()}"))
    storage = ExternalStorage(drivers=[LocalFileDriver(tmp_path)])
    converter = data_converter(storage=storage, encryption=codec)
    secret = b"SECRET-DIAGRAM-" * 2000
    [stored] = await offload(converter, [File(data=secret, media_type="application/pdf")])
    assert stored.stored is not None and stored.data is None
    [written] = await asyncio.to_thread(lambda: [p.read_bytes() for p in tmp_path.iterdir()])
    assert b"SECRET-DIAGRAM-" not in written
    message = UserMessage(content="Read it.", attachments=[stored])
    [back] = await StoredBytes().resolve(lambda: converter, [message])
    assert isinstance(back, UserMessage) and back.attachments[0].data == secret
    plain = data_converter(storage=storage, encryption=None)
    small = [Image(data=b"tiny", media_type="image/png")]
    assert await offload(plain, small) == small, "small bytes stay inline"
