"""Each Temporal variant behind one small interface: a worker for a queue and a way to start."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from durable_agent import Tool
from durable_agent.client import AgentClient
from durable_agent.worker import create_worker

from . import bare, durable
from .fake import TOOL_NAME, prompt

Start = Callable[[str, str, int, int], Awaitable[WorkflowHandle[Any, Any]]]


@dataclass
class Variant:
    name: str
    client: Client
    worker: Callable[[str], Worker]
    start: Start
    served_as: str | None = None
    """Its name for `bench.serve`, which runs its worker in a process of its own."""
    history: bool = True
    """Measure history size: off for variants whose history is another's."""
    tool_activity: str = TOOL_NAME
    """The tool's activity type in history, to count how many tool calls a run made."""

    @property
    def key(self) -> str:
        """What `--only` matches and workflow ids start with: the name's first word."""
        return self.name.split()[0].rstrip(",")


async def bare_variant(target: str, sandboxed: bool = True) -> Variant:
    """Temporal's defaults throughout: its own client with the default data converter, and
    (unless told otherwise) the workflow sandbox."""
    client = await Client.connect(target)
    runner = {} if sandboxed else {"workflow_runner": UnsandboxedWorkflowRunner()}

    def worker(queue: str) -> Worker:
        return Worker(
            client,
            task_queue=queue,
            workflows=[bare.BareLoop],
            activities=[bare.bare_model, bare.bare_tool],
            **runner,  # type: ignore[arg-type]
        )

    async def start(queue: str, wid: str, turns: int, size: int) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow(
            bare.BareLoop.run, args=[turns, size], id=wid, task_queue=queue
        )

    tool = "bare_tool"
    if sandboxed:
        return Variant("bare", client, worker, start, "bare", tool_activity=tool)
    return Variant(
        "bare, unsandboxed",
        client,
        worker,
        start,
        "bare-unsandboxed",
        history=False,
        tool_activity=tool,
    )


def durable_variant(client: Client, fast: bool, heartbeats: bool = True) -> Variant:
    agent = durable.agent(fast, heartbeats)

    def worker(queue: str) -> Worker:
        return create_worker(client, [agent], task_queue=queue)

    async def start(queue: str, wid: str, turns: int, size: int) -> WorkflowHandle[Any, Any]:
        # No continue-as-new of our asking (None is the default too): a run continues only
        # when the server suggests it, and the long-run scenario reports whether it did.
        return await AgentClient(client, queue).start(
            agent.name, prompt(turns, size), workflow_id=wid, continue_as_new_at_bytes=None
        )

    tool = next(t.activity_name for t in agent.tools if isinstance(t, Tool))
    if fast:
        return Variant(
            "durable-agent fast", client, worker, start, "durable-fast", tool_activity=tool
        )
    if not heartbeats:
        # Per-turn time only: what heartbeats cost a turn whose calls end before their first.
        return Variant(
            "durable-agent, no heartbeats", client, worker, start, history=False, tool_activity=tool
        )
    return Variant("durable-agent", client, worker, start, "durable", tool_activity=tool)


async def encrypted_variant(target: str) -> Variant:
    """durable-agent's default mode with encryption on: its own client whose converter seals
    every payload with a fresh key (AES-256-GCM, zlib when smaller)."""
    from durable_agent.encryption import EncryptionCodec, KeyRing, generate_key
    from durable_agent.storage import data_converter

    codec = EncryptionCodec(KeyRing.parse(f"bench:{generate_key()}"))
    client = await Client.connect(target, data_converter=data_converter(encryption=codec))
    durable_agent = durable_variant(client, False)
    durable_agent.name, durable_agent.served_as = "encrypted durable-agent", None
    return durable_agent


async def traced_variant(target: str) -> Variant:
    """durable-agent's default mode with tracing on: Temporal's tracing interceptor on its
    client and worker and the GenAI attributes on every activity span, batched to an exporter
    that drops them (a turn's cost to the worker, without a collector's network). Tracing
    off is `durable-agent` itself: no interceptor at all."""
    from collections.abc import Sequence

    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from durable_agent import telemetry
    from durable_agent.storage import data_converter

    class Dropped(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    interceptors = [telemetry.tracing_interceptor(provider)]
    converter = data_converter()
    client = await Client.connect(target, data_converter=converter, interceptors=interceptors)
    traced = durable_variant(client, False)
    traced.name, traced.served_as = "traced durable-agent", None
    return traced


async def anchor_variant(target: str) -> Variant:
    from . import anchor

    client = await anchor.connect(target)

    def worker(queue: str) -> Worker:
        return Worker(
            client, task_queue=queue, workflows=[anchor.AnchorLoop], activities=[anchor.fetch]
        )

    async def start(queue: str, wid: str, turns: int, size: int) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow(
            anchor.AnchorLoop.run, args=[turns, size], id=wid, task_queue=queue
        )

    return Variant("openai-agents integration", client, worker, start, "anchor")
