"""Secrets stay out (issue 11, item 6): after a run that used every feature, no provider key,
Temporal API key, codec-server token or encryption key is in the run's history, its status
events, the worker's logs, its spans or its metrics.

The run: the real OpenAI (Responses) and Anthropic SDK clients against `FakeLLMServer`, a
retried 429, a tool that succeeds with a result large enough to go by ref and to payload
storage, a tool that fails, an approval decided with its digest, a handoff, a hook after every
model call, tracing into an in-memory exporter, Prometheus metrics, encryption, a client that
sends `TEMPORAL_API_KEY` (the dev server ignores it; TLS off), and the codec server with its
bearer token decoding the history. Every secret is in this process's environment (monkeypatch:
no other test sees it), where the worker and the SDKs read it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.converter import DataConverter
from temporalio.converter._data_converter import _is_reference_payload  # the SDK's own test
from temporalio.envconfig import ClientConfigProfile
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, HookContext, HookResult, hook, telemetry, tool
from durable_agent.codec_server import TOKEN_VARIABLE
from durable_agent.encryption import KEYS_VARIABLE, KeyRing
from durable_agent.storage import data_converter

from .codec import AUTH, NEW, OLD, TOKEN, CodecServer, with_base64_decoded
from .conftest import agent_client, eventually, new_id
from .fake_llm_server import FakeLLMServer, error, text, tool_calls
from .helpers import wait_pending
from .processes import free_port, stop
from .test_telemetry import sample, scrape, spans  # noqa: F401 - spans is a fixture

OPENAI_KEY = f"sk-test-SECRET-openai-{secrets.token_hex(8)}"
ANTHROPIC_KEY = f"sk-ant-test-SECRET-anthropic-{secrets.token_hex(8)}"
TEMPORAL_KEY = f"SECRET-temporal-api-key-{secrets.token_hex(8)}"
KEYS = f"{NEW},{OLD}"
PROMPT = "PROMPT-MARKER refund order A-1001"
STATEMENT = base64.b64encode(secrets.token_bytes(4500)).decode()
"""6,000 random characters: by ref to the next model call, and (above the 4,096-byte threshold
set below, uncompressible) into payload storage."""


@tool
def statement(order: str) -> str:
    """The order's statement.

    Args:
        order: The order id.
    """
    return f"statement of {order}: {STATEMENT}"


@tool(retry=RetryPolicy(maximum_attempts=1))
def carrier_status(order: str) -> str:
    """Where the parcel is, from a carrier that is down.

    Args:
        order: The order id.
    """
    raise ConnectionError("the carrier's service is down")


@tool(requires_approval=lambda amount: amount > 100)
def refund_order(order: str, amount: int) -> str:
    """Refund an order; over 100 a person approves first.

    Args:
        order: The order id.
        amount: Euros.
    """
    return f"refunded {amount} EUR on {order}"


@hook(name="secrets_audit")
def audit(context: HookContext) -> HookResult | None:
    return None


closer = Agent("secrets-closer", model="anthropic:fake-claude", hooks=[audit])
teller = Agent(
    "secrets-teller",
    model="openai:fake-gpt",
    tools=[statement, carrier_status, refund_order],
    hooks=[audit],
    handoffs=[closer],
)


def needles() -> dict[str, str]:
    """Every secret, as text and in the forms it could take on the way: base64 (at each of the
    three alignments inside a longer value), and an encryption key's raw bytes (as latin-1, to
    match raw bytes decoded the same way) and hex."""
    found: dict[str, str] = {}
    plain = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "TEMPORAL_API_KEY": TEMPORAL_KEY,
        TOKEN_VARIABLE: TOKEN,
    }
    for kid, key in KeyRing.parse(KEYS).keys.items():
        material = base64.b64encode(key).decode()
        plain[f"encryption key {kid}"] = material
        found[f"encryption key {kid} (raw bytes)"] = key.decode("latin-1")
        found[f"encryption key {kid} (hex)"] = key.hex()
        found[f"encryption key {kid} (urlsafe base64)"] = base64.urlsafe_b64encode(key).decode()
    for name, value in plain.items():
        found[name] = value
        for shift in range(3):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(b"\0" * shift + value.encode()).decode()
                # Drop the characters that mix in the bytes before and after the secret.
                found[f"{name} (base64, shift {shift})"] = encoded[4 if shift else 0 : -4]
    return found


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every payload anywhere in a proto message: inputs, results, failures' encoded
    attributes, headers, memo and search attributes."""
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif isinstance(value, Message):
            items = [value]
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Payload):
                yield item
            elif isinstance(item, Message):
                yield from payloads_in(item)


async def decoded(converter: DataConverter, event: HistoryEvent) -> str:
    """An event's payloads through the converter (payload storage, then decryption), as JSON."""
    values: list[Any] = []
    for payload in payloads_in(event):
        [value] = await converter.decode([payload])
        values.append(value)
    return json.dumps(values, default=str)


def leaks(places: dict[str, str]) -> list[str]:
    return [
        f"{secret} in {place}"
        for place, haystack in places.items()
        for secret, needle in needles().items()
        if needle in haystack
    ]


@pytest.fixture
def codec_server() -> Iterator[CodecServer]:
    """`durable-agent codec-server` with this test's keys and test_encryption's token; it
    starts while the run runs, and the test stops it to read its output."""
    server = CodecServer(KEYS)
    yield server
    if server.process.poll() is None:
        stop(server.process)


@pytest.mark.slow  # ~10 s: a run through two real SDKs, the codec server a process of its own
async def test_no_secret_in_history_events_logs_spans_or_metrics(
    dev_env: WorkflowEnvironment,
    spans: tuple[TracerProvider, InMemorySpanExporter],  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    codec_server: CodecServer,
) -> None:
    provider, exporter = spans
    caplog.set_level(logging.DEBUG)
    with FakeLLMServer() as llm:
        for name, value in {
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": llm.openai_url,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "ANTHROPIC_BASE_URL": llm.anthropic_url,
            KEYS_VARIABLE: KEYS,
            TOKEN_VARIABLE: TOKEN,
            "DURABLE_AGENT_PAYLOAD_THRESHOLD": "4096",
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": dev_env.client.namespace,
            "TEMPORAL_API_KEY": TEMPORAL_KEY,
            "TEMPORAL_TLS": "false",  # the dev server speaks plaintext and ignores the key
        }.items():
            monkeypatch.setenv(name, value)
        llm.reply(
            error(429, "slow down", {"retry-after": "0"}),
            tool_calls(
                ("c1", "statement", '{"order": "A-1001"}'),
                ("c2", "carrier_status", '{"order": "A-1001"}'),
            ),
            tool_calls(("c3", "refund_order", '{"order": "A-1001", "amount": 250}')),
            tool_calls(("h1", "transfer_to_secrets-closer", '{"reason": "wrap up"}')),
            text("All done: refunded 250 EUR."),
        )
        # As `durable_agent.worker.connect` connects (Temporal's environment configuration),
        # with this test's tracer provider and a metrics runtime of its own.
        port = free_port()
        converter = data_converter()  # encrypting: the keys are in the environment now
        client = await Client.connect(
            **ClientConfigProfile.load().to_client_connect_config(),
            data_converter=converter,
            interceptors=[telemetry.tracing_interceptor(provider)],
            runtime=telemetry.metrics_runtime(f"127.0.0.1:{port}"),
        )
        async with agent_client(client, teller) as (agents, _):
            handle = await agents.start("secrets-teller", PROMPT, workflow_id=new_id())
            [pending] = await wait_pending(agents, handle.id)
            await agents.decide(handle.id, "c3", True, digest=pending.digest)
            result = await handle.result()

            async def refund_counted() -> bool:
                return sample(scrape(port), "durable_agent_tool_calls", tool="refund_order") == 1

            await eventually(refund_counted, "the refund on the metrics endpoint")
            metrics = scrape(port)
            events = await agents.history(handle.id, ["agent", "llm", "tool"])
            status = await agents.status(handle.id)
    assert (result.agent, result.final_text) == ("secrets-closer", "All done: refunded 250 EUR.")
    assert pending.digest is not None

    # The run used every secret it was given: each key reached its server.
    sent = [(r.path, {k.lower(): v for k, v in r.headers.items()}) for r in llm.requests]
    assert [p for p, _ in sent] == [*["/v1/responses"] * 4, "/v1/messages"]
    assert {h["authorization"] for p, h in sent if p == "/v1/responses"} == {f"Bearer {OPENAI_KEY}"}
    assert [k for k, v in sent[-1][1].items() if ANTHROPIC_KEY in v], "x-api-key or bearer"
    assert client.service_client.config.api_key == TEMPORAL_KEY

    history = await handle.fetch_history()
    history_json = history.to_json()
    assert "binary/encrypted" in with_base64_decoded(history_json), "encryption is on"
    payloads_by_event = {
        f"event {e.event_id} ({e.WhichOneof('attributes')})": await decoded(converter, e)
        for e in history.events
    }
    model_inputs = [
        payloads_by_event[k]
        for k, e in zip(payloads_by_event, history.events, strict=True)
        if e.activity_task_scheduled_event_attributes.activity_type.name == "model.complete"
    ]
    assert len(model_inputs) == 4, "a model call each turn (the 429 is a retry)"
    assert not [i for i in model_inputs if STATEMENT in i], "the statement goes by ref"
    stored = [p for e in history.events for p in payloads_in(e) if _is_reference_payload(p)]
    assert stored, "the statement went to payload storage"
    assert any(PROMPT in p for p in payloads_by_event.values()), "payloads decode"

    # The codec server decodes the history's payloads for whoever holds its token.
    body = {
        "payloads": [MessageToDict(p) for e in history.events for p in payloads_in(e) if p.metadata]
    }
    answer: tuple[int, str] = (0, "")

    async def codec_answered() -> bool:
        nonlocal answer
        with contextlib.suppress(OSError):
            answer = codec_server.post("/decode", body, {**AUTH, "X-Namespace": "default"})
        return answer[0] != 0

    await eventually(codec_answered, f"the codec server on {codec_server.url}")
    stop(codec_server.process)
    assert answer[0] == 200 and PROMPT in with_base64_decoded(answer[1])
    assert codec_server.process.stdout is not None
    codec_output = codec_server.process.stdout.read().decode()

    finished = exporter.get_finished_spans()
    systems = {s.attributes.get("gen_ai.system") for s in finished if s.attributes}
    assert {"openai", "anthropic"} <= systems, "tracing is on"
    assert 'tool="carrier_status"' in metrics and 'outcome="failed"' in metrics
    assert any(r.name.startswith(("openai", "httpx")) for r in caplog.records), "DEBUG logs"
    assert any(r.name.startswith("temporalio.activity") for r in caplog.records)
    captured = capfd.readouterr()

    places = {
        "history JSON (fetch_history, base64 decoded)": with_base64_decoded(history_json),
        "history bytes": "".join(e.SerializeToString().decode("latin-1") for e in history.events),
        **{f"history {event}, decoded": text for event, text in payloads_by_event.items()},
        "status events (history query, agent/llm/tool)": events.model_dump_json(),
        "status query": status.model_dump_json(),
        "run result": result.model_dump_json(),
        "worker logs (DEBUG, every logger)": "\n".join(
            f"{r.name} {r.levelname} {r.getMessage()} {r.__dict__!r}" for r in caplog.records
        )
        + caplog.text,
        "process stdout/stderr (the SDK core's logs)": captured.out + captured.err,
        "spans (names, attributes, events, resource)": "\n".join(s.to_json() for s in finished),
        "Prometheus scrape": metrics,
        "codec server output": codec_output,
        "codec server answer": with_base64_decoded(answer[1]),
    }
    found = leaks(places)
    assert found == [], "secrets leaked:\n" + "\n".join(found)
