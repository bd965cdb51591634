"""Encryption at rest: a run with tools, an approval and a handoff leaves only ciphertext in
the Temporal server's own database, and the docker stack passes the keys through."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, ScriptedModel, ToolMessage, tool
from durable_agent.client import AgentClient
from durable_agent.codec_server import TOKEN_VARIABLE
from durable_agent.encryption import (
    KEYS_VARIABLE,
)
from durable_agent.storage import PAYLOAD_DIR_VARIABLE
from durable_agent.telemetry import ErrorTypesOnly

from .codec import NEW, OLD, TOKEN, CodecServer, with_base64_decoded
from .conftest import calls
from .helpers import wait_pending
from .processes import BIN, ROOT, DevServer, start_worker, stop
from .test_e2e import address_of

PROMPT = "PROMPT-MARKER please move my savings"
HOLDER = "ARG-MARKER-holder"
BALANCE = "RESULT-MARKER balance 1200"
MEMO = "ARG-MARKER-memo"
REASON = "DECISION-MARKER looks fine"
REPLY = "REPLY-MARKER all done"
MARKERS = (PROMPT, HOLDER, BALANCE, MEMO, REASON, REPLY, "TOOL-MARKER-wired", "HANDOFF-MARKER")
BIG = 6000  # random bytes: above the payload threshold below even after compression


@tool()
def lookup_account(holder: str) -> str:
    """The balance, with the statement attached.

    Args:
        holder: Whose account.
    """
    statement = base64.b64encode(secrets.token_bytes(BIG)).decode()
    return f"{BALANCE} for {holder}\n{statement}"


@tool(requires_approval=True)
def move_money(amount: int, memo: str) -> str:
    """Move money (a person approves first).

    Args:
        amount: Dollars.
        memo: What for.
    """
    return f"TOOL-MARKER-wired {amount} ({memo})"


closer = Agent("closer", model=ScriptedModel("closer", lambda request: REPLY))
teller = Agent(
    "teller",
    model=ScriptedModel(
        "teller",
        [
            calls(("c1", "lookup_account", {"holder": HOLDER})),
            calls(("c2", "move_money", {"amount": 5, "memo": MEMO})),
            calls(("c3", "transfer_to_closer", {"reason": "HANDOFF-MARKER wrap up"})),
        ],
    ),
    tools=[lookup_account, move_money],
    handoffs=[closer],
)
VAULT_SECRET = "ERROR-MARKER the vault code is 0451"


@tool(retry=RetryPolicy(maximum_attempts=2))
def open_vault(code: str) -> str:
    """Open the vault (it never opens: its error says the secret).

    Args:
        code: The code to try.
    """
    raise PermissionError(f"{VAULT_SECRET}, not {code}")


vault = Agent(
    "vault",
    model=ScriptedModel(
        "vault",
        [calls(("v1", "open_vault", {"code": "ARG-MARKER-1234"})), "REPLY-MARKER it stays shut"],
    ),
    tools=[open_vault],
)
agents = [teller, vault]


def show(address: str, workflow_id: str, *codec: str) -> str:
    done = subprocess.run(
        [
            str(BIN / "temporal"),
            "workflow",
            "show",
            "-w",
            workflow_id,
            "-o",
            "json",
            "--address",
            address,
            *codec,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return with_base64_decoded(done.stdout)


def files_under(*paths: Path) -> Iterator[tuple[Path, bytes]]:
    for path in paths:
        for found in [path] if path.is_file() else sorted(path.parent.glob(path.name + "*")):
            if found.is_file():
                yield found, found.read_bytes()
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file():
                    yield found, found.read_bytes()


@pytest.mark.slow  # ~15 s: its own dev server, a worker process, the CLIs
async def test_a_run_leaves_only_ciphertext_in_the_server_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec_server: CodecServer
) -> None:
    keys = f"{NEW},{OLD}"
    key_material = [k.partition(":")[2] for k in (NEW, OLD)]
    payloads = tmp_path / "payloads"
    for name, value in {
        KEYS_VARIABLE: keys,
        PAYLOAD_DIR_VARIABLE: str(payloads),
        "DURABLE_AGENT_PAYLOAD_THRESHOLD": "4096",
        "DURABLE_AGENT_LOG": "DEBUG",
    }.items():
        monkeypatch.setenv(name, value)  # this process and every one it starts
    db = tmp_path / "temporal.db"
    server = DevServer(db)
    await server.start()
    queue, wf = f"enc-{uuid.uuid4()}", f"wf-{uuid.uuid4()}"
    log = tmp_path / "worker.jsonl"
    worker = start_worker(server.address, queue, log, agents="tests.test_encryption_at_rest:agents")
    try:
        client = await AgentClient.connect(queue, address=server.address)
        handle = await client.start("teller", PROMPT, workflow_id=wf)
        [pending] = await wait_pending(client, wf)
        connection = ("--address", server.address, "--task-queue", queue)
        assert (pending.tool_call_id, json.loads(pending.arguments)["memo"]) == ("c2", MEMO)
        approve = await asyncio.to_thread(
            subprocess.run,
            [str(BIN / "durable-agent"), "approve", wf, "c2", "--reason", REASON, *connection],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert approve.returncode == 0, approve.stderr
        result = await asyncio.wait_for(handle.result(), 30)
        assert (result.agent, result.final_text) == ("closer", REPLY)

        without_key = show(server.address, wf)
        with_codec = show(
            server.address,
            wf,
            *("--codec-endpoint", codec_server.url, "--codec-auth", f"Bearer {TOKEN}"),
        )
    finally:
        stop(worker, signal.SIGTERM)
        server.stop()
    assert "binary/encrypted" in without_key
    assert [m for m in MARKERS if m in without_key] == []
    # The balance came with a statement too large for history: it went to payload storage and
    # history keeps a reference, which the codec server passes through as it is.
    assert [m for m in MARKERS if m not in with_codec] == [BALANCE]

    stored = dict(files_under(db, payloads))
    assert any(p.parent == payloads for p in stored), "the large tool result went to storage"
    assert wf.encode() in stored[db], "the database holds the run (its id is not a secret)"
    for path, content in stored.items():
        leaked = [m for m in (*MARKERS, *key_material, TOKEN) if m.encode() in content]
        assert leaked == [], f"{path.name} holds {leaked}"
    logs = log.with_suffix(".stderr").read_text()
    assert [k for k in (*key_material, TOKEN) if k in logs] == []


async def test_with_encryption_a_failing_tool_logs_its_error_type_and_call_not_its_text(
    dev_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: at the default log level the SDK's "Completing activity as failed" line carried
    a failing tool's exception text, in plain text though every payload was encrypted. The
    tool fails twice (a retry, then its last attempt): the model still reads the error's text,
    the worker's log names the error's type and the tool_call_id only."""
    monkeypatch.setenv(KEYS_VARIABLE, NEW)
    queue, log = f"enc-log-{uuid.uuid4()}", tmp_path / "worker.jsonl"
    address = address_of(dev_env)
    worker = start_worker(address, queue, log, agents="tests.test_encryption_at_rest:agents")
    try:
        client = await AgentClient.connect(queue, address=address)
        handle = await client.start("vault", "PROMPT-MARKER open it")
        result = await asyncio.wait_for(handle.result(), 60)
    finally:
        stop(worker, signal.SIGTERM)
    [answer] = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert answer.is_error and VAULT_SECRET in answer.content and "1234" in answer.content
    logged = log.with_suffix(".stderr").read_text()
    assert "PermissionError from tool open_vault (tool_call_id v1), attempt 1 of 2" in logged
    assert "PermissionError from tool open_vault (tool_call_id v1), attempt 2 of 2" in logged
    assert [m for m in ("MARKER", "0451", "1234") if m in logged] == [], logged


def test_the_log_filter_keeps_an_errors_type_and_drops_its_text() -> None:
    """What the worker installs on the activity loggers when it encrypts: a hook's or a
    provider's exception (a tool's too) is logged by type, without its text or traceback."""
    try:
        raise PermissionError(VAULT_SECRET)
    except PermissionError:
        record = logging.LogRecord(
            "temporalio.activity", logging.WARNING, __file__, 1, "Completing %s", ("x",), None
        )
        record.exc_info = sys.exc_info()
    assert ErrorTypesOnly().filter(record)
    line = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING Completing x: PermissionError"


def test_compose_passes_the_keys_through_and_runs_the_codec_server() -> None:
    from .test_docker import COMPOSE, environment, services

    found = services()
    for name in ("worker", "codec-server"):
        assert environment(found[name])[KEYS_VARIABLE] == "", f"{name}: from the host, no value"
    assert environment(found["codec-server"])[TOKEN_VARIABLE] == ""
    assert environment(found["ui"])["TEMPORAL_CODEC_ENDPOINT"] == ""
    assert '"codec-server"' in found["codec-server"] and '"8081:8081"' in found["codec-server"]
    assert "BASE64" not in COMPOSE.read_text()
