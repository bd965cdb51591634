"""Encryption at rest: a run with tools, an approval and a handoff leaves only ciphertext in
the Temporal server's own database, and the docker stack passes the keys through."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable_agent import Agent, ScriptedModel, tool
from durable_agent.client import AgentClient
from durable_agent.codec_server import TOKEN_VARIABLE
from durable_agent.encryption import (
    KEYS_VARIABLE,
)
from durable_agent.storage import PAYLOAD_DIR_VARIABLE

from .codec import NEW, OLD, TOKEN, CodecServer, with_base64_decoded
from .conftest import calls
from .helpers import wait_pending
from .processes import BIN, ROOT, DevServer, start_worker, stop

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
agents = [teller]


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


def test_compose_passes_the_keys_through_and_runs_the_codec_server() -> None:
    from .test_docker import COMPOSE, environment, services

    found = services()
    for name in ("worker", "codec-server"):
        assert environment(found[name])[KEYS_VARIABLE] == "", f"{name}: from the host, no value"
    assert environment(found["codec-server"])[TOKEN_VARIABLE] == ""
    assert environment(found["ui"])["TEMPORAL_CODEC_ENDPOINT"] == ""
    assert '"codec-server"' in found["codec-server"] and '"8081:8081"' in found["codec-server"]
    assert "BASE64" not in COMPOSE.read_text()
