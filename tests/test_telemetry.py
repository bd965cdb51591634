"""Tracing and metrics (issue 11, items 4 and 5): one trace per run whose spans a worker that
replays every task records once, with the GenAI attributes; agent metrics on the Prometheus
endpoint, counted once however often a task replays; neither carries the run's content."""

from __future__ import annotations

import asyncio
import re
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durable_agent import AgentRunResult, telemetry
from durable_agent.cli import build_parser
from durable_agent.client import AgentClient
from durable_agent.storage import data_converter

from .conftest import agent_client, eventually
from .helpers import wait_pending
from .processes import free_port, start_worker, stop
from .telemetry_agents import SECRET_PROMPT, traced
from .test_cli import cli
from .test_e2e import address_of


async def run_traced(client: AgentClient) -> AgentRunResult:
    """The run of `traced`: tools, hooks, then an approval by update and a result by signal."""
    handle = await client.start("traced", SECRET_PROMPT)
    await wait_pending(client, handle.id, ids=["r1", "m1"])
    await client.decide(handle.id, "r1", True)
    await handle.signal("tool_result", {"tool_call_id": "m1", "content": "yes"})
    return await asyncio.wait_for(handle.result(), 60)


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


async def test_one_trace_a_run_each_call_once_with_genai_attributes(
    time_env: WorkflowEnvironment, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    config = time_env.client.config()
    config["interceptors"] = [telemetry.tracing_interceptor(provider)]
    # `serving` sets max_cached_workflows=0: every workflow task replays the run so far.
    async with agent_client(Client(**config), traced) as (client, _):
        result = await run_traced(client)
    assert result.final_text == "Done."
    finished: tuple[ReadableSpan, ...] = exporter.get_finished_spans()

    # One trace for the run, rooted at the client's start. A query, signal or update a client
    # sends is a trace of its own (the run's handling of it is in the run's trace).
    [start] = [s for s in finished if s.name == "StartWorkflow:AgentWorkflow"]
    assert start.context is not None
    run = [s for s in finished if s.context and s.context.trace_id == start.context.trace_id]
    apart = {s.name.split(":")[0] for s in finished if s not in run}
    assert apart <= {"QueryWorkflow", "HandleQuery", "SignalWorkflow", "StartWorkflowUpdate"}
    names = Counter(s.name for s in run)
    assert names["RunWorkflow:AgentWorkflow"] == 1
    assert names["RunActivity:model.complete"] == 3
    assert names["RunActivity:hook.telemetry_audit"] == 3
    assert names["RunActivity:tool.weather"] == 2
    assert names["RunActivity:tool.flaky"] == 1
    assert names["RunActivity:tool.refund"] == 1
    assert names["HandleUpdate:submit_approval"] == 1
    assert names["HandleSignal:tool_result"] == 1
    # The workflow's side of each activity, made only when the task is not replaying.
    for activity in ("model.complete", "hook.telemetry_audit", "tool.weather", "tool.flaky"):
        assert names[f"StartActivity:{activity}"] == names[f"RunActivity:{activity}"], activity

    models = [dict(s.attributes or {}) for s in run if s.name == "RunActivity:model.complete"]
    for attributes in models:
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.system"] == "scripted"
        assert attributes["gen_ai.request.model"] == "traced-model"
        assert attributes["gen_ai.response.model"] == "scripted:traced-model"
        assert attributes["gen_ai.agent.name"] == "traced"
    usage = result.usage
    assert sum(int(str(a["gen_ai.usage.input_tokens"])) for a in models) == usage.input_tokens
    assert sum(int(str(a["gen_ai.usage.output_tokens"])) for a in models) == usage.output_tokens
    tools = [dict(s.attributes or {}) for s in run if s.name.startswith("RunActivity:tool.")]
    assert {a["gen_ai.operation.name"] for a in tools} == {"execute_tool"}
    assert sorted((a["gen_ai.tool.name"], a["gen_ai.tool.call.id"]) for a in tools) == [
        ("flaky", "t3"),
        ("refund", "r1"),
        ("weather", "t1"),
        ("weather", "t2"),
    ]
    # Names and ids only: no prompt, argument or result.
    values = [str(v) for s in finished for v in (s.attributes or {}).values()]
    for content in ("4111", "Paris", "sunny", "refunded", "yes"):
        assert not [v for v in values if content in v], content


async def test_tracing_off_installs_nothing(time_env: WorkflowEnvironment) -> None:
    assert not telemetry.tracing_enabled()  # CI sets no OTLP endpoint
    assert telemetry.client_interceptors() == []
    assert telemetry.worker_interceptors(time_env.client) == []


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    return text


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def test_agent_metrics_on_the_prometheus_endpoint_once_despite_replays(
    time_env: WorkflowEnvironment,
) -> None:
    port = free_port()
    runtime = telemetry.metrics_runtime(f"127.0.0.1:{port}")
    client = await Client.connect(
        time_env.client.service_client.config.target_host,
        namespace=time_env.client.namespace,
        data_converter=data_converter(),
        runtime=runtime,
    )
    async with agent_client(client, traced) as (agents, worker):
        result = await run_traced(agents)
        queue = f'task_queue="{worker.task_queue}"'

        async def refund_counted() -> bool:
            return sample(scrape(port), "durable_agent_tool_calls", tool="refund") == 1

        await eventually(refund_counted, "the refund's tool call on the endpoint")
        text = "\n".join(line for line in scrape(port).splitlines() if queue in line)

    usage = result.usage
    model = {"agent": "traced", "model": "scripted:traced-model"}
    assert sample(text, "durable_agent_model_calls", **model) == 3
    assert sample(text, "durable_agent_tokens", **model, direction="input") == usage.input_tokens
    assert sample(text, "durable_agent_tokens", **model, direction="output") == usage.output_tokens
    assert sample(text, "durable_agent_waits_started", agent="traced", kind="approval") == 1
    assert sample(text, "durable_agent_waits_started", agent="traced", kind="external") == 1
    assert sample(text, "durable_agent_tool_calls", tool="weather", outcome="ok") == 2
    # A tool whose own attempts are spent answers the model with an error result (issue 18).
    assert sample(text, "durable_agent_tool_calls", tool="flaky", outcome="error") == 1
    assert sample(text, "durable_agent_tool_calls", tool="refund", outcome="ok") == 1
    latency = {"model": "scripted:traced-model", "outcome": "ok"}
    assert sample(text, "durable_agent_model_latency_count", **latency) == 3
    # Buckets up to 2 minutes (the SDK's defaults end at 10 s).
    assert sample(text, "durable_agent_model_latency_bucket", **latency, le="120000") == 3
    assert "4111" not in text and "Paris" not in text


def test_worker_flags() -> None:
    args = build_parser().parse_args(
        ["worker", "--agents", "a:b", "--tracing", "--metrics-port", "9464"]
    )
    assert (args.tracing, args.metrics_port, args.metrics_host) == (True, 9464, "127.0.0.1")


class OTLPReceiver:
    """A real OTLP/HTTP trace receiver on loopback (protobuf, as the exporter sends by
    default): it keeps each span's name and trace id."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, bytes]] = []
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        spans.extend((span.name, span.trace_id) for span in scope.spans)
                body = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def names(self, trace_id: bytes) -> Counter[str]:
        return Counter(name for name, trace in self.spans if trace == trace_id)


async def test_spans_reach_the_receiver_before_cli_and_worker_processes_exit(
    dev_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: `run --detach` lost its root span and a SIGTERMed worker its last spans; the
    exporter batches for 5 s and the CLI ends with `os._exit`. Both exit right after the run
    here, well within 5 s, so only a flush at exit delivers them."""
    address, queue = address_of(dev_env), f"otlp-{uuid.uuid4()}"
    with OTLPReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        worker = start_worker(address, queue, tmp_path / "log.jsonl")
        try:
            started = cli(address, queue, "run", "echo", "hello", "--detach")
            # The CLI process has exited: its root span is at the receiver already.
            [trace_id] = [t for n, t in receiver.spans if n == "StartWorkflow:AgentWorkflow"]
            workflow_id = started.stdout.strip()
            result = await AgentClient(dev_env.client, queue).result(workflow_id)
            assert result.final_text == "echo: hello"
        finally:
            stop(worker)  # SIGTERM at once, as an orchestrator stops a worker
        names = receiver.names(trace_id)
    assert names["RunWorkflow:AgentWorkflow"] >= 1, names
    assert names["RunActivity:model.complete"] == 1, names


def test_shutdown_does_not_hold_the_exit_for_an_unreachable_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exporter retries a collector that is down for its whole timeout (7.7 s measured at
    the default): the process exits after `wait` whatever the exporter still tries."""
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", timeout=2)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    provider.get_tracer("test").start_span("lost").end()
    monkeypatch.setattr(telemetry, "_provider", provider)
    telemetry.shutdown(wait=0.05)
    [flushing] = [t for t in threading.enumerate() if t.name == "span flush"]
    assert flushing.is_alive()  # still trying, and shutdown returned
    flushing.join(30)
