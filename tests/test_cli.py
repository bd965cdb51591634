"""The `durable-agent` CLI as a user runs it, against a dev server and a worker process."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agent import AgentRunResult, ToolMessage

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
        *(f"signal.{name}" for name in ("tool_result", "approval", "user_message")),
        *(
            f"update.{name}{part}"
            for name in ("submit_tool_result", "submit_approval", "submit_user_message")
            for part in (".input", "")
        ),
        "query.status",
        "query.pending_tool_calls",
        *(f"query.{name}{part}" for name in ("history", "transcript") for part in (".input", "")),
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
