"""The `durable-agent` CLI as a user runs it, against a dev server and a worker process."""

from __future__ import annotations

import asyncio
import codecs
import io
import json
import subprocess
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    AgentRunResult,
    AssistantMessage,
    Item,
    LiveEvent,
    ModelDelta,
    RunState,
    StatusEvent,
    ToolCall,
    ToolMessage,
)
from durable_agent.cli.printer import LivePrinter
from durable_agent.wire import EventSource

from .e2e_agents import STREAMED_REPLY
from .fake_llm_server import FakeLLMServer, Reply
from .processes import BIN, ROOT, eventually, start_worker, stop


def cli(
    address: str, queue: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "durable-agent"), *args, "--address", address, "--task-queue", queue],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


@pytest.mark.slow  # 40-67 s: ~20 CLI processes
async def test_cli_drives_a_run_with_approval_and_external_result(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    queue = f"cli-{uuid.uuid4()}"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return cli(address, queue, *args, check=check)

    def pending(wf: str) -> dict[str, str]:
        return {p["tool_call_id"]: p["kind"] for p in json.loads(run("pending", wf).stdout)}

    async def waits_for_both(wf: str) -> None:
        async def check() -> bool:
            return len(pending(wf)) == 2

        await eventually(check, f"`durable-agent pending {wf}` to list two calls")

    worker = start_worker(address, queue, tmp_path / "log.jsonl")
    try:
        wf = run("run", "clerk", "pay and ask", "--detach").stdout.strip()
        await waits_for_both(wf)
        assert pending(wf) == {"w1": "approval", "q1": "external"}
        assert json.loads(run("status", wf).stdout)["state"] == "waiting_for_approval"
        assert wf in run("list", "--status", "waiting_for_approval").stdout

        # A snapshot taken while both calls wait; the new run waits for the same calls.
        exported = tmp_path / "conv.json"
        exported.write_text(run("export", wf).stdout)
        fork = run("start", "--from", str(exported)).stdout.strip()
        await waits_for_both(fork)

        refused = run("resolve", wf, "nope", "x", check=False)
        assert refused.returncode != 0 and "unknown tool_call_id" in refused.stderr
        too_early = run("resolve", wf, "w1", "x", check=False)
        assert too_early.returncode != 0 and "does not take a result" in too_early.stderr
        assert json.loads(run("approve", wf, "w1").stdout)["accepted"] is True
        assert json.loads(run("resolve", wf, "q1", '{"ok": true}').stdout)["accepted"] is True
        assert run("resolve", wf, "q1", "twice", check=False).returncode != 0

        run("reject", fork, "w1", "--reason", "not in the fork")
        run("resolve", fork, "q1", "fork answer")
        original = await dev_env.client.get_workflow_handle(wf, result_type=AgentRunResult).result()
        forked = await dev_env.client.get_workflow_handle(fork, result_type=AgentRunResult).result()

        history = run("history", wf, "--events", "tool").stdout
        assert "tool:waiting" in history and "wired 5" in history
        watched = run("watch", wf).stdout  # a finished run: prints everything, then exits
        assert "tool:tool_finished" in watched and watched.rstrip().endswith("all handled")
        as_json = json.loads(run("history", wf, "--json").stdout)
        assert [i["role"] for i in as_json] == ["user", "assistant", "tool", "tool", "assistant"]
    finally:
        stop(worker)
    assert original.final_text == forked.final_text == "all handled"
    results = {m.tool_call_id: m for m in original.messages if isinstance(m, ToolMessage)}
    assert (results["w1"].content, results["q1"].content) == ("wired 5", '{"ok":true}')
    in_fork = {m.tool_call_id: m for m in forked.messages if isinstance(m, ToolMessage)}
    assert in_fork["w1"].is_error and "not in the fork" in in_fork["w1"].content
    assert in_fork["q1"].content == "fork answer"


def test_schema_prints_every_shape() -> None:
    """Every signal, update and query of `AgentWorkflow`, with what goes in and what comes out."""
    out = subprocess.run(
        [str(BIN / "durable-agent"), "schema"], capture_output=True, text=True, check=True
    ).stdout
    schemas = json.loads(out)
    assert set(schemas) == {
        "input",
        "output",
        *(
            f"signal.{name}"
            # child_report and budget_exceeded: between a sub-agent's run and its parent's
            for name in (
                "tool_result",
                "approval",
                "user_message",
                "child_report",
                "budget_exceeded",
            )
        ),
        *(
            f"update.{name}{part}"
            for name in (
                "submit_tool_result",
                "submit_approval",
                "submit_user_message",
                "interrupt",
            )
            for part in (".input", "")
        ),
        "query.status",
        "query.pending_tool_calls",
        *(
            f"query.{name}{part}"
            for name in ("history", "transcript", "live")
            for part in (".input", "")
        ),
        "query.snapshot",
        "snapshot",
    }
    assert "tool_call_id" in schemas["signal.tool_result"]["properties"]
    assert schemas["update.submit_approval.input"] == schemas["signal.approval"]
    assert set(schemas["update.submit_user_message"]["properties"]) == {"accepted", "detail"}
    assert schemas["query.pending_tool_calls"]["type"] == "array"
    assert {"more", "next"} <= set(schemas["query.history"]["properties"])
    assert "max_bytes" in schemas["query.history.input"]["properties"]
    assert schemas["query.status"]["properties"]["messages"]["type"] == "integer"


@pytest.mark.slow  # 6-11 s: a worker process and a run of three turns
def test_run_follows_the_conversation_to_the_end(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    queue = f"cli-{uuid.uuid4()}"
    worker = start_worker(address, queue, tmp_path / "log.jsonl")
    try:
        done = cli(address, queue, "run", "stepper", "go")
    finally:
        stop(worker)
    lines = done.stdout.splitlines()
    assert any("-> slow_step" in line for line in lines)
    assert any("<- slow_step result: step 2 done" in line for line in lines)
    assert lines[-1].endswith("all steps done")
    assert "3 turns" in done.stderr


# ---------------------------------------------------------------------------- live runs


class Streamed:
    """A CLI process whose stdout is read as it arrives."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.chunks: list[str] = []
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        """A read may end inside a character (the event lines' `·`)."""
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, address: str, queue: str, *args: str) -> Streamed:
        process = await asyncio.create_subprocess_exec(
            *(str(BIN / "durable-agent"), *args, "--address", address, "--task-queue", queue),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(4096):
            self.chunks.append(self._utf8.decode(chunk))

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    async def shows(self, text: str) -> None:
        async def check() -> bool:
            return text in self.text

        await eventually(check, f"{text!r} in the output")

    async def finished(self) -> tuple[int, str]:
        """Exit code and stderr, once the process ends (bounded)."""
        assert self.process.stderr is not None
        stderr = await asyncio.wait_for(self.process.stderr.read(), 60)
        code = await asyncio.wait_for(self.process.wait(), 60)
        await self._reader
        return code, stderr.decode()


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip()


@pytest.mark.slow  # 12-20 s: a worker process, a run streaming for 3 s, three CLI processes
async def test_run_and_watch_print_the_reply_as_it_streams_and_once(
    dev_env: WorkflowEnvironment, tmp_path: Path, server: FakeLLMServer
) -> None:
    """The model (the local server, through the real OpenAI provider in the worker) holds
    the rest of its reply until the test has seen both CLIs print the start of it."""
    address = dev_env.client.service_client.config.target_host
    queue = f"cli-{uuid.uuid4()}"
    held = threading.Event()
    server.reply(Reply(text=STREAMED_REPLY, chunk_delay=0.05, hold=held, hold_after=20))
    worker = start_worker(address, queue, tmp_path / "log.jsonl")
    try:
        wf = f"thinker-{uuid.uuid4()}"
        ran = await Streamed.start(address, queue, "run", "thinker", "go", "--workflow-id", wf)
        await ran.shows("thinker    Streaming w0")
        watched = await Streamed.start(address, queue, "watch", wf, "--events", "agent,tool")
        await watched.shows("thinker    Streaming w0")  # it joined mid-reply
        # `run` printed the words as they came: the start of the reply, before the rest existed.
        assert "done." not in ran.text
        held.set()
        code, stderr = await ran.finished()
        assert code == 0, stderr
        assert (await watched.finished())[0] == 0
        after = cli(address, queue, "watch", wf, "--no-stream", "--events", "agent,tool")
    finally:
        held.set()
        stop(worker)
    assert ran.text.count(STREAMED_REPLY) == 1
    assert f"thinker    {STREAMED_REPLY}\n" in ran.text.splitlines(keepends=True)
    assert "1 turns" in stderr
    # A watcher that joined mid-reply printed exactly what `watch --no-stream` prints once the
    # run has ended: every line once, the reply's text once, nothing left over.
    assert watched.text == after.stdout
    assert after.stdout.count(STREAMED_REPLY) == 1


@pytest.mark.slow  # 11-16 s: a worker process, a run streaming until the interrupt
async def test_interrupt_cuts_the_streaming_reply_off_and_the_message_is_answered(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    queue = f"cli-{uuid.uuid4()}"
    worker = start_worker(address, queue, tmp_path / "log.jsonl")
    try:
        wf = cli(address, queue, "run", "rambler", "tell me a story", "--detach").stdout.strip()
        watched = await Streamed.start(address, queue, "watch", wf)
        await watched.shows("story20 ")
        interrupted = cli(address, queue, "interrupt", wf, "Stop, just say bye.")
        code, _ = await watched.finished()
        late = cli(address, queue, "interrupt", wf, "too late", check=False)
    finally:
        stop(worker)
    assert interrupted.stdout == "model call interrupted; the message is answered next\n"
    assert code == 0
    lines = watched.text.splitlines()
    cut = next(line for line in lines if line.endswith("[interrupted]"))
    assert cut.startswith("rambler    story0 story1 ") and "story399" not in cut
    assert watched.text.count("story0 ") == 1  # the partial reply, printed once
    after_cut = lines[lines.index(cut) + 1 :]
    assert after_cut[:3] == [
        '  · agent:interrupt_received "cut"=true',
        "user       Stop, just say bye.",
        '  · agent:turn_started "turn"=2, "agent"="rambler"',
    ]
    # The reply and its call's event, in either order (the order is not the contract): a
    # reader that saw "Bye." stream holds the event until the line ends; one that found the
    # call ended prints the event, then the message whole.
    called = [line for line in lines if line.startswith("  · llm:model_called")][-1:]
    assert sorted(after_cut[3:]) == sorted([*called, "rambler    Bye."])
    assert one_line_error(late) == f"error: run {wf} has ended (completed)"


@pytest.mark.slow  # 19-32 s: a worker process and about ten CLI processes
async def test_cancel_prints_the_calls_that_were_waiting_and_errors_are_one_line(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    queue = f"cli-{uuid.uuid4()}"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return cli(address, queue, *args, check=check)

    worker = start_worker(address, queue, tmp_path / "log.jsonl")
    try:
        wf = run("run", "payer", "pay", "--detach").stdout.strip()

        async def waits() -> bool:
            state: str = json.loads(run("status", wf).stdout)["state"]
            return state == "waiting_for_approval"

        await eventually(waits, f"{wf} to wait for approval")
        cancelled = run("cancel", wf)
        again = run("cancel", wf, check=False)
        status = json.loads(run("status", wf).stdout)
        unknown = run("watch", "no-such-run", check=False)
        bad_cursor = run("watch", wf, "--after", "12.x", check=False)
    finally:
        stop(worker)
    assert cancelled.stdout == "cancelled; 1 call was waiting: p1\n"
    assert status["state"] == "cancelled"
    assert one_line_error(again) == f"error: run {wf} has ended (completed)"
    assert one_line_error(unknown) == "error: no run with id no-such-run"
    assert one_line_error(bad_cursor).startswith("error: bad cursor '12.x'")
    # No worker on the run's task queue: the cancel is recorded, and the CLI says why it
    # cannot show the result instead of waiting.
    idle = f"idle-{uuid.uuid4()}"
    wf = cli(address, idle, "run", "payer", "pay", "--detach").stdout.strip()
    assert one_line_error(cli(address, idle, "cancel", wf, check=False)) == (
        f"error: cancel requested, but no worker polls task queue {idle!r}:"
        f" run {wf} ends when one does"
    )


@pytest.mark.slow  # 10-12 s: a worker process and four CLI processes
async def test_run_thread_starts_a_conversation_then_continues_the_same_run(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    queue = f"cli-{uuid.uuid4()}"
    thread = f"thread-{uuid.uuid4()}"
    worker = start_worker(address, queue, tmp_path / "log.jsonl")
    try:
        first = cli(address, queue, "run", "chatter", "hello there", "--thread", thread)
        second = cli(address, queue, "run", "chatter", "and again", "--thread", thread)
        status = json.loads(cli(address, queue, "status", thread).stdout)
        cli(address, queue, "cancel", thread)
    finally:
        stop(worker)
    assert "user       hello there\n" in first.stdout
    assert "chatter    echo: hello there\n" in first.stdout
    assert "the thread waits for your next message" in first.stderr
    # The second prints only its own exchange, and stops once the run waits again.
    assert "hello there" not in second.stdout
    assert second.stdout.startswith("user       and again\n")
    assert "chatter    echo: and again\n" in second.stdout
    # One run holds both exchanges (a second run would be at turn 1 with two messages).
    assert (status["state"], status["turn"], status["messages"]) == ("waiting_for_user", 2, 4)


# ---------------------------------------------------------------------------- printing


def printed(events: list[LiveEvent], sources: tuple[EventSource, ...] = ("agent",)) -> str:
    out = io.StringIO()
    printer = LivePrinter(out, sources)
    for event in events:
        printer.show(event)
    printer.close()
    return out.getvalue()


def text(*words: str, attempt: int = 1) -> list[LiveEvent]:
    return [
        LiveEvent(
            id="0.0",
            type="delta",
            delta=ModelDelta(turn=1, attempt=attempt, kind="text", text=w),
            state=RunState.RUNNING,
        )
        for w in words
    ]


def item(value: Item) -> LiveEvent:
    return LiveEvent(id="0.0", type="item", item=value, state=RunState.RUNNING)


def status_event(source: EventSource, kind: str, **data: object) -> LiveEvent:
    return item(StatusEvent(source=source, kind=kind, at=datetime.now(UTC), data=data))


STARTED = status_event("agent", "turn_started", turn=1, agent="helper")


def test_a_streamed_reply_is_completed_by_its_message_not_repeated() -> None:
    call = ToolCall(id="c1", name="look", arguments="{}")
    message = AssistantMessage(content="Hello there, friend.", tool_calls=[call], agent="helper")
    out = printed([STARTED, *text("Hello ", "there, "), item(message)])
    assert out == printed([STARTED, item(message)])  # as if nothing had streamed
    assert out.endswith("helper     Hello there, friend.\nhelper     -> look({})  [c1]\n")


def test_a_retried_call_is_marked_and_its_new_text_follows() -> None:
    superseded = LiveEvent(
        id="0.0",
        type="delta",
        delta=ModelDelta(turn=1, attempt=2, kind="superseded"),
        state=RunState.RUNNING,
    )
    message = AssistantMessage(content="Second try.", agent="helper")
    out = printed([STARTED, *text("First ", "tr"), superseded, *text("Second ", attempt=2)])
    assert out.endswith("helper     First tr [retrying]\nhelper     Second \n")
    out = printed([STARTED, *text("First "), superseded, *text("Second "), item(message)])
    assert out.endswith("helper     First [retrying]\nhelper     Second try.\n")


def test_an_interrupted_reply_ends_with_a_marker_and_events_wait_for_the_line() -> None:
    received = status_event("agent", "interrupt_received", cut=True)
    cut = status_event("llm", "interrupted", turn=1, partial="Once upon a time")
    out = printed([STARTED, *text("Once ", "upon "), received, cut], ("agent", "llm"))
    assert out.endswith(
        'helper     Once upon a time [interrupted]\n  · agent:interrupt_received "cut"=true\n'
    )
    # Without a streamed line (--no-stream), the event itself is shown, when its source is.
    assert "partial" in printed([cut], ("llm",)) and printed([cut], ("agent",)) == ""
