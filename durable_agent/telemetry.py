"""Traces and metrics of agent runs, both off unless asked for.

Tracing is Temporal's `TracingInterceptor` on the client (workers built on that client inherit
it): one trace per run, rooted at the client call that started it, with a span for each
activity (model call, tool, hook) and each signal and update the workflow handled. Workflow
spans are made only when the workflow is not replaying and activities never replay, so a worker
that replays every task records each span once. `ActivityTelemetry` adds the OpenTelemetry GenAI
attributes to the activity spans and records the activity metrics.

Metrics are the SDK runtime's Prometheus endpoint (`serve_metrics`) plus the agent's own,
named `durable_agent_*`: from the workflow through `workflow.metric_meter()` (the SDK drops
recordings while a workflow replays) and from activities through `activity.metric_meter()`.
Labels carry names only (agent, model, tool, kind, outcome): never arguments, content or keys.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

import temporalio.activity
import temporalio.client
import temporalio.worker
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from .wire import HookInvocation, ModelRequest, ModelResponse, ToolInvocation, ToolOutcome, Usage

__all__ = [
    "ENDPOINT_VARIABLES",
    "ActivityTelemetry",
    "ErrorTypesOnly",
    "client_interceptors",
    "keep_error_text_out_of_logs",
    "metrics_runtime",
    "record_model_call",
    "record_wait",
    "request_tracing",
    "serve_metrics",
    "shutdown",
    "tracing_enabled",
    "tracing_interceptor",
    "worker_interceptors",
]

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
"""Either one set turns tracing on; the OTLP/HTTP exporter reads them (and the other standard
`OTEL_EXPORTER_OTLP_*` variables: headers, timeout, certificates) itself."""
SERVICE_NAME = "durable-agent"
"""The traces' `service.name` unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES says."""

MODEL_LATENCY_BUCKETS_MS = (100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000)
"""In ms. The SDK's default buckets end at 10 s; a model call often takes longer."""

SHUTDOWN_WAIT = 3.0
"""Seconds `shutdown` waits for the last spans to be sent. A collector that answers takes
milliseconds; one that is down held a CLI command's exit 7.7 s (the exporter's retries)."""

_requested = False
_provider: Any = None
"""The tracer provider this module made, which `shutdown` flushes and closes."""


# ---------------------------------------------------------------------- tracing setup


def request_tracing() -> None:
    """Turn tracing on for this process even without an OTLP endpoint variable
    (`durable-agent worker --tracing`; the exporter then sends to localhost:4318)."""
    global _requested
    _requested = True


def tracing_enabled() -> bool:
    return _requested or any(os.environ.get(v) for v in ENDPOINT_VARIABLES)


def client_interceptors() -> list[temporalio.client.Interceptor]:
    """What `connect` installs: the tracing interceptor when tracing is on, else nothing (so
    tracing off costs nothing at all)."""
    return [tracing_interceptor()] if tracing_enabled() else []


def tracing_interceptor(tracer_provider: Any = None) -> temporalio.client.Interceptor:
    """Temporal's tracing interceptor over `tracer_provider` (default: this process's global
    provider, set up once with the OTLP/HTTP exporter)."""
    from temporalio.contrib.opentelemetry import TracingInterceptor

    provider = tracer_provider or _global_tracer_provider()
    return TracingInterceptor(provider.get_tracer("durable_agent"))


def _global_tracer_provider() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # ours from an earlier call, or the application's
        return current
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The environment's resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) wins over ours.
    resource = Resource.create({"service.name": SERVICE_NAME}).merge(
        OTELResourceDetector().detect()
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    global _provider
    _provider = provider
    return provider


def shutdown(wait: float = SHUTDOWN_WAIT) -> None:
    """Export the spans still batched and close the exporter, waiting at most `wait` seconds;
    call it before the process exits. The CLI ends with `os._exit` (no interpreter
    finalization, so no atexit hook runs), and the batch processor sends only every 5 s:
    without this a `run --detach`'s root span and a worker's last spans were lost. A no-op
    when this module made no provider (tracing off, or the application brought its own, which
    it shuts down itself)."""
    global _provider
    provider, _provider = _provider, None
    if provider is None:
        return
    # In a thread of its own: an unreachable collector holds the export for the exporter's
    # timeout and retries, and the process should exit anyway.
    flushing = threading.Thread(target=provider.shutdown, name="span flush", daemon=True)
    flushing.start()
    flushing.join(wait)


# ---------------------------------------------------------------------- logs


ERROR_LOGGERS = (
    "temporalio.activity",
    "temporalio.worker._activity",
    "temporalio.worker._workflow_instance",
)
"""Where the SDK logs a call's or a workflow task's exception: "Completing activity as failed"
(with the traceback) and our tools' own lines; "Failed activation on workflow" (a pydantic
error there quotes the input it refused)."""


class ErrorTypesOnly(logging.Filter):
    """Keeps a record's exception type and drops its text and traceback. With payloads
    encrypted, an activity's exception text is conversation content (a tool's error, a
    provider's message quoting the prompt, a hook's), which must not reach a log in plain
    text; the type, the activity and the run (in the SDK's line) and, for a tool, the
    tool_call_id (in ours) say which call failed and how."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {_error_type(record.exc_info[1])}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _error_type(exc: BaseException) -> str:
    kind = getattr(exc, "type", None)  # an ApplicationError's type names the original error
    return f"{type(exc).__name__} ({kind})" if isinstance(kind, str) else type(exc).__name__


def keep_error_text_out_of_logs(client: temporalio.client.Client) -> None:
    """`ErrorTypesOnly` on `ERROR_LOGGERS` when `client` encrypts payloads (any payload codec);
    installed by `create_worker`, once a process."""
    if client.data_converter.payload_codec is None:
        return
    for name in ERROR_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ErrorTypesOnly) for f in logger.filters):
            logger.addFilter(ErrorTypesOnly())


# ---------------------------------------------------------------------- metrics setup


def serve_metrics(bind_address: str) -> Runtime:
    """Serve Prometheus metrics on `bind_address` (`host:port`) from a new SDK runtime, made
    the process default so every client connected after this call (and its workers) uses it.
    """
    runtime = metrics_runtime(bind_address)
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime


def metrics_runtime(bind_address: str) -> Runtime:
    """An SDK runtime serving Prometheus metrics on `bind_address`, for `Client.connect`."""
    buckets = {"durable_agent_model_latency": MODEL_LATENCY_BUCKETS_MS}
    config = PrometheusConfig(bind_address, histogram_bucket_overrides=buckets)
    return Runtime(telemetry=TelemetryConfig(metrics=config))


def worker_interceptors(client: temporalio.client.Client) -> list[temporalio.worker.Interceptor]:
    """`ActivityTelemetry` when the client traces or its runtime serves metrics; else none."""
    from temporalio.contrib.opentelemetry import TracingInterceptor

    tracing = any(isinstance(i, TracingInterceptor) for i in client.config()["interceptors"])
    runtime = client.service_client.config.runtime or Runtime.default()
    if tracing or runtime.metric_meter is not MetricMeter.noop:
        return [ActivityTelemetry()]
    return []


# ---------------------------------------------------------------------- activity side


class ActivityTelemetry(temporalio.worker.Interceptor):
    """GenAI attributes on each activity's span, and `durable_agent_tool_calls` and
    `durable_agent_model_latency`. An interceptor sees every activity's input, result and
    exception in one place, so the activities carry no telemetry code. It must come after
    Temporal's tracing interceptor (inside its span): client interceptors come first."""

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return _ActivityTelemetryInbound(next)


class _ActivityTelemetryInbound(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        kind, _, name = temporalio.activity.info().activity_type.partition(".")
        argument = input.args[0] if input.args else None
        started = time.monotonic()
        outcome = "failed"  # raised: Temporal retries it, or the run sees the failure
        result: Any = None
        try:
            result = await super().execute_activity(input)
            outcome = "error" if isinstance(result, ToolOutcome) and result.is_error else "ok"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            meter = temporalio.activity.metric_meter()
            if kind == "tool":
                _tool_call(meter, name, argument, outcome)
            elif kind == "hook":
                agent = argument.agent if isinstance(argument, HookInvocation) else ""
                _set_span_attributes({"durable_agent.hook.name": name, "gen_ai.agent.name": agent})
            elif isinstance(argument, ModelRequest):
                response = result if isinstance(result, ModelResponse) else None
                _model_call(meter, argument, response, time.monotonic() - started, outcome)


def _tool_call(meter: MetricMeter, tool: str, invocation: object, outcome: str) -> None:
    attributes: dict[str, str] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool}
    if isinstance(invocation, ToolInvocation):
        attributes["gen_ai.tool.call.id"] = invocation.tool_call_id
        attributes["gen_ai.agent.name"] = invocation.agent
    _set_span_attributes(attributes)
    meter.create_counter("durable_agent_tool_calls", "Tool activity attempts.").add(
        1, {"tool": tool, "outcome": outcome}
    )


def _model_call(
    meter: MetricMeter,
    request: ModelRequest,
    response: ModelResponse | None,
    seconds: float,
    outcome: str,
) -> None:
    system, _, model = request.model.partition(":")
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": system.removesuffix("-chat"),  # openai-chat is OpenAI's other API
        "gen_ai.request.model": model,
    }
    if request.agent is not None:
        attributes["gen_ai.agent.name"] = request.agent
    if response is not None:
        attributes["gen_ai.response.model"] = response.model or model
        attributes["gen_ai.usage.input_tokens"] = response.usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = response.usage.output_tokens
        attributes["gen_ai.usage.cache_read.input_tokens"] = response.usage.cached_input_tokens
    _set_span_attributes(attributes)
    # A duration, like the SDK's own latencies: same unit (ms) and buckets on the endpoint.
    meter.create_histogram_timedelta(
        "durable_agent_model_latency", "Model activity attempts, start to end.", "duration"
    ).record(timedelta(seconds=seconds), {"model": request.model, "outcome": outcome})


def _set_span_attributes(attributes: dict[str, Any]) -> None:
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)


# ---------------------------------------------------------------------- workflow side
# Called with `workflow.metric_meter()`, whose instruments record nothing while the workflow
# replays: each model call and each wait is counted once, however often its task replays.


def record_model_call(
    meter: MetricMeter, agent: str, model: str, usage: Usage, fallback: str = "none"
) -> None:
    """`durable_agent_tokens` (by agent, model and direction), `durable_agent_cached_input_tokens`
    (the input tokens read from the provider's prompt cache, counted in `input` as well) and
    `durable_agent_model_calls`. `model`: the model that answered (a fallback, when the one
    before it failed); `fallback`, on the call count only: why the model before it failed
    (its failure type), `none` when the first model answered."""
    labels = {"agent": agent, "model": model}
    meter.create_counter("durable_agent_model_calls", "Model calls a run made.").add(
        1, {**labels, "fallback": fallback}
    )
    tokens = meter.create_counter("durable_agent_tokens", "Tokens the model calls used.")
    tokens.add(usage.input_tokens, {**labels, "direction": "input"})
    tokens.add(usage.output_tokens, {**labels, "direction": "output"})
    meter.create_counter(
        "durable_agent_cached_input_tokens", "Input tokens read from the provider's prompt cache."
    ).add(usage.cached_input_tokens, labels)


def record_wait(meter: MetricMeter, agent: str, kind: str) -> None:
    """`durable_agent_waits_started`: a call began to wait for a signal (an approval, a result
    or a person), by agent and kind."""
    meter.create_counter(
        "durable_agent_waits_started", "Tool calls that began to wait for a signal."
    ).add(1, {"agent": agent, "kind": kind})
