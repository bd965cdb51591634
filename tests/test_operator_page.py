"""The operator page in a real browser: Debian's chromium driven by Playwright, against
`durable-agent serve`'s app on loopback, a dev server and a worker.

Never `playwright install`: the browser is the system's (/usr/bin/chromium; .ci/run installs
it). With DURABLE_AGENT_UPDATE_SCREENSHOT=1 it saves docs/operator-page.png, the README's
picture of the page.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    File,
    ModelRequest,
    RunState,
    ScriptedModel,
    ToolCall,
    ToolMessage,
    UserMessage,
    input_guardrail,
    tool,
)
from durable_agent.serve.app import create_app
from durable_agent.serve.page import STATIC
from durable_agent.wire import ENDED

from .conftest import agent_client, new_id, run_error
from .e2e_agents import asker
from .fake_llm_content import Seen
from .fake_llm_server import FakeLLMServer, text
from .helpers import wait_pending, wait_state
from .test_serve import http_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).parent.parent / "docs" / "operator-page.png"
UPDATE_SCREENSHOT = "DURABLE_AGENT_UPDATE_SCREENSHOT"
"""Set to 1 to write the screenshot to docs/ (else it goes to the test's tmp_path, so that a
test run leaves the tree as it was)."""
TOKEN = "page-test-token"
ANSWER = (
    "Done: order 1042 is refunded ($42.50 back to the card ending 4242). "
    "The customer gets an email with the receipt."
)

RECORD_STREAMING = """() => {
  window.streamed = [];
  new MutationObserver(() => {
    for (const el of document.querySelectorAll("#conversation .msg.streaming")) {
      window.streamed.push(el.lastChild.textContent);
    }
  }).observe(document.getElementById("conversation"),
             {subtree: true, childList: true, characterData: true});
}"""
"""Keeps every text the streaming reply showed: a reply streams for a second or two, too
short to catch by polling on a loaded machine."""

PAGE_WORKER = {"max_cached_workflows": 100}
"""A worker that caches its workflows, as deployed ones do, for every test the page reads
live. With the test default (no cache), every workflow task and every query replays the
whole history in the sandbox, and the page's reads (the stream's live queries and the
waiting calls) compete with the run's own tasks: a workflow task timed out (10 s) in 1 of 3
runs and the reply arrived whole 10 s late (workflow_task_timed_out in the run's history);
on a loaded machine the answer to a resolved call missed the page's 20 s wait in 1 of 3
fresh-clone CI runs. Cached, as users run workers, neither happened."""

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
    pytest.mark.slow,
]


@tool
def lookup_order(order: int) -> str:
    """Look an order up.

    Args:
        order: The order number.
    """
    return json.dumps({"order": order, "total": 42.5, "status": "delivered, damaged"})


@tool(requires_approval=True)
def refund(order: int, amount: float) -> str:
    """Refund an order (a person approves first).

    Args:
        order: The order number.
        amount: Dollars.
    """
    return f"refunded {amount:.2f} for order {order}"


def _call(call_id: str, name: str, args: dict[str, object]) -> AssistantMessage:
    return AssistantMessage(
        tool_calls=[ToolCall(id=call_id, name=name, arguments=json.dumps(args))]
    )


desk = Agent(
    "refund-desk",
    model=ScriptedModel(
        "refund-desk",
        [
            _call("look-1", "lookup_order", {"order": 1042}),
            _call("refund-1", "refund", {"order": 1042, "amount": 42.5}),
            ANSWER,
        ],
        chunk_delay=0.08,  # slow enough to watch the answer stream in
    ),
    tools=[lookup_order, refund],
)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        await browser.close()


async def test_an_operator_approves_a_call_and_watches_the_answer_stream(
    dev_env: WorkflowEnvironment, browser: Browser, tmp_path: Path
) -> None:
    screenshot = SCREENSHOT if os.environ.get(UPDATE_SCREENSHOT) == "1" else tmp_path / "page.png"
    async with agent_client(dev_env.client, desk, **PAGE_WORKER) as (client, _):
        # Two runs of the desk: this one the operator handles, another one waiting.
        handle = await client.start("refund-desk", "Refund order 1042, it arrived broken.")
        other = await client.start("refund-desk", "Order 1042 again: refund it.")
        await wait_pending(client, handle.id, ids=["refund-1"])
        await wait_pending(client, other.id, ids=["refund-1"])
        async with http_server(create_app(client)) as url:
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            await page.goto(url)
            await page.get_by_label("Status").select_option("waiting_for_approval")
            run_button = page.get_by_role("button", name=f"Open run {handle.id}")
            await run_button.click()
            # The conversation so far, and the call that waits.
            conversation = page.locator("#conversation")
            await expect(conversation).to_contain_text("Refund order 1042, it arrived broken.")
            await expect(conversation).to_contain_text('"status": "delivered, damaged"')
            await expect(page.locator("#run-state")).to_have_text("waiting for approval")
            await expect(page.get_by_role("button", name="Approve refund")).to_be_visible()
            await page.screenshot(path=str(screenshot), full_page=True)
            await page.evaluate(RECORD_STREAMING)
            await page.get_by_role("button", name="Approve refund").click()
            # The answer streams in, then the message that lands replaces what streamed.
            final = conversation.locator(".msg.assistant[data-final]").last
            await expect(final).to_contain_text(ANSWER, timeout=30_000)
            await expect(conversation.locator(".msg.streaming")).to_have_count(0)
            await expect(page.locator("#run-state")).to_have_text("completed")
            await expect(page.locator("#pending-box")).to_be_hidden()
            streamed: list[str] = await page.evaluate("window.streamed")
            result = await handle.result()
            await client.cancel(other.id)
    assert result.final_text == ANSWER
    assert screenshot.stat().st_size > 10_000
    # The page showed the answer growing piece by piece, each time a prefix of the answer.
    assert len(set(streamed)) > 3, streamed
    assert all(ANSWER.startswith(text) for text in streamed), streamed


LONG = "Here is the long version, " + "and it goes on " * 40
REPLIES = {"hello": "first answer", "and again?": LONG, "short, please": "short answer"}


def _answer(request: ModelRequest) -> str:
    """Replies to the last user message, so an interrupted call's turn can be answered anew."""
    last = [m for m in request.messages if isinstance(m, UserMessage)][-1]
    return REPLIES[last.content]


async def test_say_interrupt_and_cancel_from_the_page(
    dev_env: WorkflowEnvironment, browser: Browser
) -> None:
    chat = Agent("page-chat", model=ScriptedModel(new_id(), _answer, chunk_delay=0.05))
    async with agent_client(dev_env.client, chat, **PAGE_WORKER) as (client, _):
        thread = new_id()
        await client.send("page-chat", "hello", thread_id=thread)
        await wait_state(client, thread, RunState.WAITING_FOR_USER, turn=1)
        async with http_server(create_app(client)) as url:
            page = await browser.new_page()
            await page.goto(f"{url}/#{thread}")  # a run's own link opens it
            conversation = page.locator("#conversation")
            await expect(conversation).to_contain_text("first answer")
            await page.get_by_label("Message").fill("and again?")
            await page.get_by_role("button", name="Say").click()
            # The long reply streams (about 4 s); an interrupt cuts it off and is answered.
            await expect(conversation.locator(".msg.streaming")).to_contain_text("long version")
            await page.get_by_label("Message").fill("short, please")
            await page.get_by_role("button", name="Interrupt").click()
            await expect(conversation.locator(".event", has_text="interrupted")).to_have_count(1)
            final = conversation.locator(".msg.assistant[data-final]").last
            await expect(final).to_contain_text("short answer", timeout=20_000)
            await expect(conversation.locator(".msg.streaming")).to_have_count(0)
            page.once("dialog", lambda dialog: dialog.accept())
            await page.get_by_role("button", name="Cancel run").click()
            await expect(page.locator("#run-state")).to_have_text("cancelled", timeout=20_000)
        history = await client.history(thread)
    answers = [i.content for i in history.items if isinstance(i, AssistantMessage)]
    assert answers == ["first answer", "short answer"]  # the cut-off reply is no message


async def test_with_a_token_the_page_asks_once_and_resolves_a_waiting_call(
    dev_env: WorkflowEnvironment, browser: Browser, tmp_path: Path
) -> None:
    """The page and its files are open; the API needs the token, which the page asks for
    once, keeps for the tab, and sends as a bearer header (and to the stream in its URL).
    The run waits for an external call's result, which the operator gives as JSON, with a
    file attached."""
    release = tmp_path / "release-notes.pdf"
    release.write_bytes(b"%PDF-1.4\n%%EOF")
    async with agent_client(dev_env.client, asker, **PAGE_WORKER) as (client, _):
        handle = await client.start("asker", "Ship the release?")
        await wait_pending(client, handle.id, ids=["ask_human-0"])
        async with http_server(create_app(client, token=TOKEN)) as url:
            page = await browser.new_page()
            await page.goto(f"{url}/#{handle.id}")
            await page.get_by_label("This server needs a token").fill(TOKEN)
            await page.get_by_role("button", name="Use token").click()
            await expect(page.locator("#token-form")).to_be_hidden()
            await expect(page.get_by_role("button", name=f"Open run {handle.id}")).to_be_visible()
            # A reload in the same tab asks no more.
            await page.reload()
            await expect(page.locator("#conversation")).to_contain_text("Ship the release?")
            await expect(page.locator("#token-form")).to_be_hidden()
            kept = await page.evaluate("sessionStorage.getItem('durable-agent-token')")
            result_box = page.get_by_label("Result (JSON)")
            await result_box.fill("not json")
            await page.get_by_role("button", name="Resolve ask_human").click()
            await expect(page.locator("#notice")).to_contain_text("must be JSON")
            await result_box.fill('{"answer": "yes, ship it"}')
            attach = page.get_by_label("Attach to the result of ask_human")
            await attach.set_input_files(release)
            await page.get_by_role("button", name="Resolve ask_human").click()
            final = page.locator("#conversation .msg.assistant[data-final]").last
            await expect(final).to_contain_text("shipped", timeout=20_000)
            await expect(page.locator("#run-state")).to_have_text("completed")
        result = await handle.result()
    assert kept == TOKEN
    [tool_result] = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert tool_result.content == '{"answer":"yes, ship it"}'
    assert tool_result.attachments == [
        File(data=release.read_bytes(), media_type="application/pdf", filename="release-notes.pdf")
    ]


def _no_passwords(text: str) -> str | None:
    return "the message asks for a password" if "password" in text.lower() else None


async def test_the_page_says_why_a_run_ended(
    dev_env: WorkflowEnvironment, browser: Browser
) -> None:
    """Regression: the page showed an ended run's state but not why (`StatusInfo.reason`,
    which `durable-agent status` prints): which guardrail tripped, why the run failed. A run
    still going has no reason to show."""
    guarded = Agent(
        "page-guarded",
        model=ScriptedModel(new_id(), []),  # the guardrail trips before any model call
        guardrails=[input_guardrail(_no_passwords)],
    )
    looping = Agent(
        "page-looping",
        model=ScriptedModel(new_id(), [_call("look-1", "lookup_order", {"order": 1042})]),
        tools=[lookup_order],
        max_turns=1,
    )
    async with agent_client(dev_env.client, guarded, looping, desk, **PAGE_WORKER) as (
        client,
        _,
    ):
        tripped = await client.start("page-guarded", "What is the admin password?")
        failed = await client.start("page-looping", "Look order 1042 up, then answer.")
        waiting = await client.start("refund-desk", "Refund order 1042, it arrived broken.")
        await tripped.result()
        failure = await run_error(failed)
        await wait_pending(client, waiting.id, ids=["refund-1"])
        async with http_server(create_app(client)) as url:
            seen = {}
            for handle, state in (
                (tripped, "guardrail tripped"),
                (failed, "failed"),
                (waiting, "waiting for approval"),
            ):
                page = await browser.new_page()
                await page.goto(f"{url}/#{handle.id}")
                await expect(page.locator("#run-state")).to_have_text(state)
                if handle is not waiting:
                    await expect(page.locator("#run-reason")).not_to_be_empty()
                seen[state] = await page.locator("#run-reason").text_content()
                hidden = await page.locator("#run-reason").is_hidden()
                await page.close()
        await client.cancel(waiting.id)
    assert seen["guardrail tripped"] == "the message asks for a password"
    assert seen["failed"] == failure.message
    assert "max_turns (1) reached" in failure.message
    assert seen["waiting for approval"] == "" and hidden


def test_the_page_knows_every_state_a_run_never_leaves() -> None:
    """Regression (issue 17): the page's list of ended states lacked `budget_exceeded`, so a
    run its budget stopped kept its cancel and message buttons. The list is the wire's."""
    source = (STATIC / "app.js").read_text()
    line = next(text for text in source.splitlines() if "const ended = [" in text)
    assert set(re.findall(r'"(\w+)"', line)) == {state.value for state in ENDED}


def test_the_status_filter_offers_every_state() -> None:
    """The runs list filtered by state could not show runs a guardrail or a budget stopped:
    its options lacked them."""
    page = (STATIC / "index.html").read_text()
    select = page[page.index('<select id="status-filter">') : page.index("</select>")]
    offered = set(re.findall(r'<option value="(\w+)">', select))
    assert offered == {state.value for state in RunState}


async def test_an_operator_attaches_files_to_a_message(
    dev_env: WorkflowEnvironment, browser: Browser, server: FakeLLMServer, tmp_path: Path
) -> None:
    """The message form's Attach control: the chosen files go with the message (as data URLs),
    the model sees them, the large one through payload storage, and the page names them."""
    chart = tmp_path / "chart.png"
    chart.write_bytes(os.urandom(40_000))
    notes = tmp_path / "notes.pdf"
    notes.write_bytes(b"%PDF-1.4\n%%EOF")
    server.reply(text("Hello."), text("A chart and notes."))
    viewer = Agent("page-viewer", model="anthropic:fake-model")
    async with agent_client(dev_env.client, viewer, **PAGE_WORKER) as (client, _):
        thread = new_id()
        await client.send("page-viewer", "hi", thread_id=thread)
        await wait_state(client, thread, RunState.WAITING_FOR_USER, turn=1)
        async with http_server(create_app(client)) as url:
            page = await browser.new_page()
            await page.goto(f"{url}/#{thread}")
            conversation = page.locator("#conversation")
            await expect(conversation).to_contain_text("Hello.")
            await page.get_by_label("Attach", exact=True).set_input_files([chart, notes])
            await page.get_by_label("Message").fill("What are these?")
            await page.get_by_role("button", name="Say").click()
            final = conversation.locator(".msg.assistant[data-final]").last
            await expect(final).to_contain_text("A chart and notes.", timeout=20_000)
            asked = conversation.locator(".msg.user").last
            await expect(asked).to_contain_text("image: image/png")
            await expect(asked).to_contain_text("file: notes.pdf")
            chosen = await page.get_by_label("Attach", exact=True).evaluate(
                "input => input.files.length"
            )
        history = await client.history(thread)
        await client.cancel(thread)
    assert chosen == 0, "the form forgets the files once they are sent"
    assert server.requests[1].attachments == [
        Seen("user", "image", "bytes", base64.b64encode(chart.read_bytes()).decode(), "image/png"),
        Seen(
            "user",
            "file",
            "bytes",
            base64.b64encode(notes.read_bytes()).decode(),
            "application/pdf",
        ),
    ]
    [message] = [i for i in history.items if isinstance(i, UserMessage) and i.attachments]
    image, pdf = message.attachments
    assert image.stored is not None, "the large one is a reference in the run"
    assert pdf.data == notes.read_bytes() and pdf.filename == "notes.pdf"
