"""The codec server over real HTTP (CORS, bearer token, namespace), and `durable-agent dev`
wiring the web UI to it."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

from durable_agent.encryption import (
    KEYS_VARIABLE,
)

from .codec import AUTH, NEW, TOKEN, UI, CodecServer
from .conftest import eventually
from .processes import BIN, free_port, stop


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
