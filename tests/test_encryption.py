"""Encryption at rest: the codec, its key rotation and errors, the codec server over real HTTP,
and a run read back from the Temporal server's own database file."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload

from durable_agent import Agent, ScriptedModel, tool
from durable_agent.client import AgentClient
from durable_agent.codec_server import TOKEN_VARIABLE
from durable_agent.encryption import (
    KEY_FILE_VARIABLE,
    KEYS_VARIABLE,
    DecryptionError,
    EncryptionCodec,
    EncryptionKeyError,
    KeyRing,
    generate_key,
)
from durable_agent.storage import PAYLOAD_DIR_VARIABLE, data_converter

from .conftest import calls, eventually
from .helpers import wait_pending
from .processes import BIN, ROOT, DevServer, free_port, start_worker, stop

# --- the codec ---------------------------------------------------------------------------------


def ring(text: str) -> EncryptionCodec:
    return EncryptionCodec(KeyRing.parse(text))


OLD, NEW = f"old:{generate_key()}", f"new:{generate_key()}"


async def test_round_trip_hides_the_value_and_restores_it() -> None:
    converter = data_converter(encryption=ring(OLD))
    value = {"prompt": "the secret plan " * 20, "n": 1}
    [payload] = await converter.encode([value])
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert payload.metadata["encryption-key-id"] == b"old"
    assert payload.metadata["encryption-compression"] == b"zlib"  # 340 repetitive bytes shrink
    assert b"secret" not in payload.SerializeToString()
    assert await converter.decode([payload], [dict]) == [value]


async def test_rotation_new_payloads_use_the_current_key_old_ones_still_read() -> None:
    [sealed_before] = await ring(OLD).encode([Payload(data=b"before rotation")])
    rotated = ring(f"{NEW},{OLD}")
    [sealed_after] = await rotated.encode([Payload(data=b"after rotation")])
    assert sealed_after.metadata["encryption-key-id"] == b"new"
    opened = await rotated.decode([sealed_before, sealed_after])
    assert [p.data for p in opened] == [b"before rotation", b"after rotation"]


async def test_an_unknown_key_id_is_one_clear_line() -> None:
    [sealed] = await ring(OLD).encode([Payload(data=b"x")])
    with pytest.raises(DecryptionError) as error:
        await ring(NEW).decode([sealed])
    message = str(error.value)
    assert "'old'" in message and KEYS_VARIABLE in message and "\n" not in message


async def test_tampered_ciphertext_or_metadata_is_refused() -> None:
    codec = ring(f"{NEW},{OLD}")
    [sealed] = await codec.encode([Payload(data=b"pay 10 to alice" * 10)])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata["encryption-key-id"] = b"old"  # a known id, but not the sealing key
    uncompressed = Payload()
    uncompressed.CopyFrom(sealed)
    del uncompressed.metadata["encryption-compression"]
    for tampered in (flipped, relabelled, uncompressed):
        with pytest.raises(DecryptionError, match="failed authentication"):
            await codec.decode([tampered])


async def test_plaintext_payloads_pass_through_for_recorded_histories() -> None:
    plain = (await data_converter().encode(["recorded before encryption"]))[0]
    assert plain.metadata["encoding"] == b"json/plain"
    assert await ring(OLD).decode([plain]) == [plain]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("nokey", "entry 1 is not kid:base64key"),
        ("k1:not*base64", "key 'k1' is not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "key 'k1' is 5 bytes; AES-256 needs 32"),
        (f"{OLD},{OLD}", "key id 'old' appears twice"),
        (" , ", "holds no key"),
    ],
)
def test_a_malformed_key_setting_is_one_line_without_the_key(setting: str, expected: str) -> None:
    with pytest.raises(EncryptionKeyError) as error:
        KeyRing.from_environment({KEYS_VARIABLE: setting})
    message = str(error.value)
    assert expected in message and "\n" not in message
    assert OLD.partition(":")[2] not in message


def test_keys_from_a_file_and_never_both_settings(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# rotated 2026-11\n{NEW}\n{OLD}\n")
    found = KeyRing.from_environment({KEY_FILE_VARIABLE: str(keys)})
    assert found is not None and (found.current_id, list(found.keys)) == ("new", ["new", "old"])
    assert NEW.partition(":")[2] not in repr(found) + repr(EncryptionCodec(found))
    with pytest.raises(EncryptionKeyError, match="not both"):
        KeyRing.from_environment({KEY_FILE_VARIABLE: str(keys), KEYS_VARIABLE: NEW})
    assert KeyRing.from_environment({}) is None


def test_the_cli_reports_a_malformed_key_in_one_line() -> None:
    done = subprocess.run(
        [str(BIN / "durable-agent"), "codec-server", "--port", str(free_port())],
        env={**os.environ, KEYS_VARIABLE: "k1:c2hvcnQ="},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: EncryptionKeyError: DURABLE_AGENT_ENCRYPTION_KEYS: key 'k1' is 5 bytes; AES-256 "
        "needs 32 (`durable-agent keygen`) (--debug shows the traceback)"
    ]


def test_keygen_prints_an_entry_the_setting_takes() -> None:
    done = subprocess.run(
        [str(BIN / "durable-agent"), "keygen", "--id", "k7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = KeyRing.parse(done.stdout.strip())
    assert found.current_id == "k7" and len(found.keys["k7"]) == 32


# --- the codec server, over real HTTP ----------------------------------------------------------

UI = "http://localhost:8233"
TOKEN = secrets.token_urlsafe(16)


class CodecServer:
    """`durable-agent codec-server` as a user starts it, with `KEYS` and a bearer token."""

    def __init__(self, keys: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                str(BIN / "durable-agent"),
                "codec-server",
                "--port",
                str(self.port),
                *("--cors-origin", UI),
            ],
            env={**os.environ, KEYS_VARIABLE: keys, TOKEN_VARIABLE: TOKEN},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def post(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


@pytest.fixture(scope="module")
async def codec_server() -> AsyncIterator[CodecServer]:
    server = CodecServer(f"{NEW},{OLD}")

    async def serving() -> bool:
        try:
            urllib.request.urlopen(server.url, timeout=1)  # noqa: ASYNC210 - loopback, bounded
        except urllib.error.HTTPError:
            return True  # 404: it answers
        except OSError:
            return False
        return True

    await eventually(serving, f"the codec server on {server.url}")
    yield server
    stop(server.process)
    assert server.process.stdout is not None
    assert TOKEN not in server.process.stdout.read().decode(), "the token stays out of its logs"


AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def test_codec_server_answers_the_ui_preflight(codec_server: CodecServer) -> None:
    request = urllib.request.Request(
        codec_server.url + "/decode",
        method="OPTIONS",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-namespace,authorization,content-type",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == UI
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert {"x-namespace", "authorization", "content-type"} <= set(allowed.split(", "))
        assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_codec_server_requires_its_bearer_token(codec_server: CodecServer) -> None:
    body: dict[str, list[object]] = {"payloads": []}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, _ = codec_server.post("/decode", body, {**headers, "Origin": UI})
        assert status == 401, headers
    assert codec_server.post("/decode", body, AUTH)[0] == 200


def test_codec_server_encodes_and_decodes_for_a_namespace(codec_server: CodecServer) -> None:
    plain = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}}
    plain["data"] = base64.b64encode(b'"hello"').decode()  # type: ignore[assignment]
    headers = {**AUTH, "X-Namespace": "default"}
    status, encoded = codec_server.post("/encode", {"payloads": [plain]}, headers)
    assert status == 200
    [sealed] = json.loads(encoded)["payloads"]
    assert base64.b64decode(sealed["metadata"]["encryption-key-id"]) == b"new"
    status, decoded = codec_server.post("/decode", json.loads(encoded), headers)
    assert (status, json.loads(decoded)) == (200, {"payloads": [plain]})
    status, refused = codec_server.post("/decode", {"payloads": "nope"}, headers)
    assert status == 400 and "payloads" in refused


# --- a run, read back from the server's database -----------------------------------------------

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


def revealed(output: str) -> str:
    """The CLI's JSON output with every base64 string decoded beside it."""
    found = [output]

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):  # not base64: already in `output`
                found.append(base64.b64decode(value, validate=True).decode("latin-1"))

    walk(json.loads(output))
    return "\n".join(found)


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
    return revealed(done.stdout)


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
    worker = start_worker(server.address, queue, log, agents="tests.test_encryption:agents")
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


@pytest.mark.slow  # ~8 s: a dev server started and stopped by the real CLI
async def test_dev_wires_the_web_ui_to_its_codec_server() -> None:
    port, ui_port, codec_port = free_port(), free_port(), free_port()
    ports = ("--port", str(port), "--ui-port", str(ui_port), "--codec-port", str(codec_port))
    dev = subprocess.Popen(  # noqa: ASYNC220 - a background server, stopped below
        [str(BIN / "durable-agent"), "dev", "--in-memory", *ports],
        env={**os.environ, KEYS_VARIABLE: NEW},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    settings: dict[str, Any] = {}

    async def ui_up() -> bool:
        try:
            url = f"http://127.0.0.1:{ui_port}/api/v1/settings"
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: ASYNC210 - bounded
                settings.update(json.load(response))
        except OSError:
            return False
        return True

    try:
        await eventually(ui_up, "the dev server's web UI")
        endpoint = f"http://127.0.0.1:{codec_port}"
        assert settings["Codec"]["Endpoint"] == endpoint
        preflight = urllib.request.Request(
            endpoint + "/decode",
            method="OPTIONS",
            headers={
                "Origin": f"http://localhost:{ui_port}",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-namespace,content-type",
            },
        )
        with urllib.request.urlopen(preflight, timeout=10) as response:  # noqa: ASYNC210
            assert response.headers["Access-Control-Allow-Origin"] == f"http://localhost:{ui_port}"
    finally:
        stop(dev)  # SIGTERM: the codec server stops, then the dev server it started
    assert dev.stdout is not None
    out = dev.stdout.read().decode()
    assert f"the UI decodes through {endpoint}" in out
    assert NEW.partition(":")[2] not in out
    for closed in (codec_port, port):  # both servers are gone when the command returns
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", closed), timeout=1).close()


def test_compose_passes_the_keys_through_and_runs_the_codec_server() -> None:
    from .test_docker import COMPOSE, environment, services

    found = services()
    for name in ("worker", "codec-server"):
        assert environment(found[name])[KEYS_VARIABLE] == "", f"{name}: from the host, no value"
    assert environment(found["codec-server"])[TOKEN_VARIABLE] == ""
    assert environment(found["ui"])["TEMPORAL_CODEC_ENDPOINT"] == ""
    assert '"codec-server"' in found["codec-server"] and '"8081:8081"' in found["codec-server"]
    assert "BASE64" not in COMPOSE.read_text()
