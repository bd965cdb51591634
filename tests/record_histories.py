"""Record the histories the replay test replays.

    python -m tests.record_histories                   # every scenario, as the newest generation
    python -m tests.record_histories parallel can      # only these
    python -m tests.record_histories --prefix corpus-v5  # a new generation, beside the old ones
    python -m tests.record_histories --everything everything-v5  # the older all-in-one run

Each corpus scenario drives one feature of the loop on a dev server (one server, one worker,
each scenario its own workflow id) and saves every run it made as
`histories/<prefix>-<scenario>.json`, or `-1.json`, `-2.json`... for a scenario of several
runs (a continue-as-new chain, a run and its resumption from a snapshot).
See histories/README.md for when to record, and why old files are never replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, NoReturn

from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.worker import (
    ContinueAsNewInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from durable_agent import (
    AgentRunInput,
    File,
    Image,
    LiveEvent,
    PendingCall,
    RunState,
    StatusEvent,
    ToolMessage,
)
from durable_agent.client import AgentClient
from durable_agent.devserver import start_embedded
from durable_agent.wire import SUMMARY_INSTRUCTIONS
from durable_agent.worker import create_worker

from .fake_llm_server import FakeLLMServer, Reply, Request, text, tool_calls
from .processes import eventually
from .replay_agents import CHAIN_TURNS, COMPACT_PAGES, GATES, STEER, STREAMED, TASK_QUEUE, agents

HISTORIES = Path(__file__).parent / "histories"
PREFIX = "corpus-v4"
"""The newest generation: what the recorder writes by default, and the one test_replay checks
has a recording of every scenario. Older generations (`corpus-`, `corpus-v2-`, `corpus-v3-`)
stay as they are.
"""
STREAM_PUBLISH = "__temporal_workflow_stream_publish"
"""The signal that carries a batch of the model's deltas (temporalio.contrib.workflow_streams)."""

UNHANDLED_COMMAND = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND

Runs = list[WorkflowHandle[Any, Any]]
"""The runs a scenario made, in order; each is saved as one history."""


# ---------------------------------------------------------------------------- the switch gate


class SwitchGate:
    """Holds the first continue-as-new of an armed run in the worker until the recorder has
    sent a signal: the signal then lands while the run switches, deterministically.

    The workflow thread blocks on a `threading.Event` (under the SDK's 2 s deadlock limit) while
    the recorder, on the event loop, sends the signal."""

    def __init__(self) -> None:
        self.armed = False
        self.reached = threading.Event()
        self.released = threading.Event()

    def hold(self) -> None:
        if self.armed:
            self.armed = False
            self.reached.set()
            self.released.wait(timeout=1.5)


GATE = SwitchGate()


class _GateInterceptor(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _GateInbound


class _GateInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_GateOutbound(outbound))


class _GateOutbound(WorkflowOutboundInterceptor):
    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        GATE.hold()
        super().continue_as_new(input)


# ---------------------------------------------------------------------------- helpers


async def pending_ids(client: AgentClient, workflow_id: str) -> list[str]:
    return sorted(p.tool_call_id for p in await client.pending(workflow_id))


async def wait_pending(client: AgentClient, workflow_id: str, *ids: str) -> None:
    async def check() -> bool:
        return await pending_ids(client, workflow_id) == sorted(ids)

    await eventually(check, f"pending calls {ids} in {workflow_id}")


async def wait_state(client: AgentClient, workflow_id: str, state: RunState, turn: int) -> None:
    async def check() -> bool:
        status = await client.status(workflow_id)
        return status.state is state and status.turn == turn

    await eventually(check, f"{workflow_id} {state.value} at turn {turn}")


async def wait_event(client: AgentClient, workflow_id: str, kind: str, call_id: str) -> None:
    async def check() -> bool:
        page = await client.history(workflow_id, events=["tool"])
        return any(
            isinstance(i, StatusEvent) and i.kind == kind and i.data.get("tool_call_id") == call_id
            for i in page.items
        )

    await eventually(check, f"{kind} of {call_id} in {workflow_id}")


async def signals(handle: WorkflowHandle[Any, Any], name: str) -> int:
    """How many `name` signals the run's history holds."""
    history = await handle.fetch_history()
    return sum(
        e.workflow_execution_signaled_event_attributes.signal_name == name for e in history.events
    )


async def run_input(client: Client, handle: WorkflowHandle[Any, Any]) -> AgentRunInput:
    """The input a run started with (for a run continued as new: what its predecessor carried)."""
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [params] = await client.data_converter.decode(started.input.payloads, [AgentRunInput])
    assert isinstance(params, AgentRunInput)
    return params


async def ends_failed(handle: WorkflowHandle[Any, Any]) -> None:
    try:
        await asyncio.wait_for(handle.result(), 30)
    except WorkflowFailureError:
        return
    raise AssertionError(f"{handle.id} should have failed")


# ---------------------------------------------------------------------------- scenarios


async def parallel(client: AgentClient, wf: str) -> Runs:
    """Five calls in one response: two good, a schema error and bad JSON (both back to the
    model), an unknown tool; a result over 1 KB goes to the next model call by ref."""
    handle = await client.start("corpus-parallel", "find the plan", workflow_id=wf)
    await handle.result()
    return [handle]


async def external_late(client: AgentClient, wf: str) -> Runs:
    """An external call answered by a signal long after it began to wait, with structured
    content; a signal for an unknown call is ignored first."""
    handle = await client.start("corpus-asker", "may I refund?", workflow_id=wf)
    await wait_pending(client, wf, "m1")
    await asyncio.sleep(1)
    await handle.signal("tool_result", {"tool_call_id": "nope", "content": "x"})
    await handle.signal("tool_result", {"tool_call_id": "m1", "content": {"refund": True}})
    await handle.result()
    return [handle]


async def long_running_early(client: AgentClient, wf: str) -> Runs:
    """A long-running call's result arrives while its starting activity still runs: buffered,
    then applied when the call waits."""
    GATES["r1"] = asyncio.Event()
    handle = await client.start("corpus-reporter", "report Q3", workflow_id=wf)
    await wait_event(client, wf, "tool_started", "r1")
    answer = await client.resolve(wf, "r1", "report at /reports/q3.pdf")
    assert answer.detail == "buffered until the call waits", answer
    GATES.pop("r1").set()
    await handle.result()
    return [handle]


async def approvals(client: AgentClient, wf: str) -> Runs:
    """Two approval calls: one approved by update, one rejected with a reason by signal."""
    handle = await client.start("corpus-approver", "delete bob and eve", workflow_id=wf)
    await wait_pending(client, wf, "a1", "a2")
    await client.decide(wf, "a1", approved=True)
    await handle.signal("approval", {"tool_call_id": "a2", "approved": False, "reason": "VIP"})
    await handle.result()
    return [handle]


async def handoffs(client: AgentClient, wf: str) -> Runs:
    """A handoff to another agent (a second one in the same response is refused), which hands
    off to a person, whose `user_message` answers it."""
    handle = await client.start("corpus-front-desk", "refund my order", workflow_id=wf)
    await wait_pending(client, wf, "h3")
    await client.say(wf, "Refund of 80 EUR done.", name="accounts")
    await handle.result()
    return [handle]


async def hook_inject(client: AgentClient, wf: str) -> Runs:
    """A hook injects a message after a response with a tool call (placed after its result)
    and after a final answer (which then gets another answer)."""
    handle = await client.start("corpus-reviewed", "answer me", workflow_id=wf)
    await handle.result()
    return [handle]


async def hook_stop(client: AgentClient, wf: str) -> Runs:
    """A hook stops the run (the response's tool call finishes first); another hook fails
    and is recorded."""
    handle = await client.start("corpus-stopped", "go", workflow_id=wf)
    await handle.result()
    return [handle]


async def can(client: AgentClient, wf: str) -> Runs:
    """A chain of three runs or more (history over 4 KB, runs at least 2 s old) with a
    `user_message` signalled while its first switch is in flight. Each reply streams a few
    words first, so every continue-as-new carries the stream's offset (from corpus-v3 on)."""
    GATE.armed = True
    GATE.reached.clear()
    GATE.released.clear()
    handle = await client.start(
        "corpus-long", "echo them all", workflow_id=wf, continue_as_new_at_bytes=4_000
    )
    assert await asyncio.to_thread(GATE.reached.wait, 60), "the run never continued as new"
    await handle.signal("user_message", {"content": "sent during the switch"})
    GATE.released.set()
    result = await handle.result()
    assert result.turns == CHAIN_TURNS + 1, result.turns
    runs = await chain(client.client, handle)
    assert len(runs) >= 3, "a run continued from another continues again"
    first = await runs[0].fetch_history()
    assert any(
        e.workflow_task_failed_event_attributes.cause == UNHANDLED_COMMAND for e in first.events
    ), "the signal did not land during the switch (the server refused no continue-as-new)"
    offsets = [(await run_input(client.client, run)).stream_offset for run in runs]
    assert offsets[0] == 0 and all(a < b for a, b in pairwise(offsets)), offsets
    return runs


async def deadline(client: AgentClient, wf: str) -> Runs:
    """An external call, an approval and a long-running call whose 1 s deadlines pass: the
    model gets the timeout errors."""
    handle = await client.start("corpus-deadline", "try it", workflow_id=wf)
    await handle.result()
    return [handle]


async def deadline_fails(client: AgentClient, wf: str) -> Runs:
    """A call with `fail_on_deadline`: the run fails when its deadline passes."""
    handle = await client.start("corpus-deadline-fails", "try it", workflow_id=wf)
    await ends_failed(handle)
    return [handle]


async def fast(client: AgentClient, wf: str) -> Runs:
    """Fast mode: a local model, a local tool and a local hook, beside a remote tool."""
    handle = await client.start("corpus-fast", "add 1 and 2", workflow_id=wf)
    await handle.result()
    return [handle]


async def snapshot(client: AgentClient, wf: str) -> Runs:
    """Export a run whose response has an answered note, an answered external call, a
    long-running call still waiting and a user message at the inbox; terminate it; resume from
    the snapshot in a new run, where the waiting call then gets its result."""
    original = await client.start("corpus-resumable", "export orders", workflow_id=f"{wf}-from")
    await wait_pending(client, original.id, "x1", "x2")
    await client.resolve(original.id, "x1", "yes")
    await wait_pending(client, original.id, "x2")
    await client.say(original.id, "and tell me when done")
    exported = await client.snapshot(original.id)
    await original.terminate("exported")
    resumed = await client.start(snapshot=exported, workflow_id=wf)

    async def answer_all() -> bool:
        for call_id in await pending_ids(client, wf):
            await client.resolve(wf, call_id, f"{call_id} done")
        description = await resumed.describe()
        return description.status is not None and description.status.name == "COMPLETED"

    await eventually(answer_all, "the resumed run to finish")
    return [original, resumed]


async def conversation(client: AgentClient, wf: str) -> Runs:
    """A conversation with three user messages (prompt, update, signal), waiting for the
    next one, then cancelled: how a conversation run ends."""
    handle = await client.start("corpus-chat", "hi", workflow_id=wf, conversation=True)
    await wait_state(client, wf, RunState.WAITING_FOR_USER, 1)
    await client.say(wf, "Capital of France?", name="ann")
    await wait_state(client, wf, RunState.WAITING_FOR_USER, 2)
    await handle.signal("user_message", {"content": "And of Germany?"})
    await wait_state(client, wf, RunState.WAITING_FOR_USER, 3)
    await client.cancel(wf)
    assert (await handle.result()).outcome == "cancelled"
    return [handle]


async def stream(client: AgentClient, wf: str) -> Runs:
    """A reply streamed to the run while the model writes it: batches of deltas signalled
    during the model call, dropped once the message lands."""
    handle = await client.start("corpus-streamer", "tell me", workflow_id=wf)
    assert (await handle.result()).final_text == STREAMED
    published = await signals(handle, STREAM_PUBLISH)
    assert published >= 5, f"only {published} batches of deltas"
    return [handle]


async def interrupt(client: AgentClient, wf: str) -> Runs:
    """A tool call, then a long streamed answer cut off by the `interrupt` update (the model
    activity is cancelled, its partial text kept as an `interrupted` event); the interrupting
    message is answered next."""
    handle = await client.start("corpus-steered", "weather in Oslo?", workflow_id=wf)

    async def streaming() -> None:
        deltas = 0
        async for event in client.events(wf):
            deltas += _second_turn_text(event)
            if deltas >= 5:
                return

    await asyncio.wait_for(streaming(), 60)
    answer = await client.interrupt(wf, STEER)
    assert "interrupted" in answer.detail, answer
    assert (await handle.result()).final_text == "Sunny."
    page = await client.history(wf, events=["llm"])
    assert any(isinstance(i, StatusEvent) and i.kind == "interrupted" for i in page.items)
    return [handle]


def _second_turn_text(event: LiveEvent) -> bool:
    return event.delta is not None and event.delta.turn == 2 and event.delta.kind == "text"


async def cancel_approval(client: AgentClient, wf: str) -> Runs:
    """A run cancelled while two approvals wait: it ends with outcome `cancelled`, and its
    result lists both calls (the `cancel-with-result` patch)."""
    handle = await client.start("corpus-approver", "delete bob and eve", workflow_id=wf)
    await wait_pending(client, wf, "a1", "a2")
    await client.cancel(wf)
    result = await handle.result()
    assert result.outcome == "cancelled", result.outcome
    assert sorted(p.tool_call_id for p in result.pending) == ["a1", "a2"]
    return [handle]


async def send(client: AgentClient, wf: str) -> Runs:
    """A conversation started empty by `send` (update-with-start), its first message the
    update's; a second `send` continues the same run; then it is cancelled."""
    first = await client.send("corpus-thread", "hi", thread_id=wf)
    await wait_state(client, wf, RunState.WAITING_FOR_USER, 1)
    second = await client.send("corpus-thread", "What time is it?", thread_id=wf)
    assert second.run_id == first.run_id, "the second message started another run"
    await wait_state(client, wf, RunState.WAITING_FOR_USER, 2)
    await client.cancel(wf)
    handle = client.handle(wf)
    assert (await handle.result()).outcome == "cancelled"
    return [handle]


async def sub_agents(client: AgentClient, wf: str) -> Runs:
    """Three sub-agent calls in one response run as parallel child workflows; one child waits
    for an approval, listed by the parent and answered through it. Saved: the parent, then
    each child."""
    handle = await client.start("corpus-lead", "work", workflow_id=wf)
    (pending,) = await wait_pending_calls(client, wf, 1)
    assert pending.run == f"{wf}/1/s3", pending
    await client.decide(wf, pending.tool_call_id, True, digest=pending.digest)
    assert (await handle.result()).final_text == "all done"
    return [handle] + [client.handle(f"{wf}/1/{c}") for c in ("s1", "s2", "s3")]


async def budget(client: AgentClient, wf: str) -> Runs:
    """A budget of three model calls over a tree: the parent's call and its two children's
    reach it, so the parent makes no second call and ends `budget_exceeded`."""
    handle = await client.start("corpus-budgeted", "go", workflow_id=wf)
    result = await handle.result()
    assert result.outcome == "budget_exceeded", result.outcome
    return [handle] + [client.handle(f"{wf}/1/{c}") for c in ("b1", "b2")]


async def mcp(client: AgentClient, wf: str) -> Runs:
    """An MCP server's tools listed once (recorded) and two of them called, over stdio."""
    handle = await client.start("corpus-mcp", "add and shout", workflow_id=wf)
    assert (await handle.result()).final_text == "2 + 3 = 5, FIVE"
    return [handle]


async def wait_pending_calls(client: AgentClient, wf: str, n: int) -> list[PendingCall]:
    found: list[PendingCall] = []

    async def check() -> bool:
        nonlocal found
        found = await client.pending(wf)
        return len(found) == n

    await eventually(check, f"{n} pending call(s) in {wf}")
    return found


async def compact(client: AgentClient, wf: str) -> Runs:
    """A run longer than its agent's context window: old tool outputs shortened, old turns
    folded into summaries by `model.summarize` calls, each step a `context_compacted` event
    (the `context-window` patch)."""
    handle = await client.start("corpus-compact", "read the report", workflow_id=wf)
    await handle.result()
    page = await client.history(wf, ["llm"])
    kinds = [item.kind for item in page.items if isinstance(item, StatusEvent)]
    assert kinds.count("context_compacted") >= 2, kinds
    return [handle]


async def count(client: AgentClient, wf: str) -> Runs:
    """An Anthropic model (the local server): near its window's limit each call's prompt is
    counted by the provider (`model.count_tokens`, the `token-count` patch) before the window
    compacts on that count."""
    return await _read_on_local_server(client, "corpus-count", wf, "model.count_tokens")


async def server_side(client: AgentClient, wf: str) -> Runs:
    """An OpenAI Responses model that trims its prompt itself (`ContextPolicy.server_side`):
    every call carries the whole conversation and `truncation="auto"`; no summary."""
    return await _read_on_local_server(client, "corpus-trim", wf, None)


async def _read_on_local_server(
    client: AgentClient, agent: str, wf: str, activity: str | None
) -> Runs:
    with FakeLLMServer(context_window=4_000) as server:
        server.responder = _page_reader
        with _environ(
            OPENAI_BASE_URL=server.openai_url,
            OPENAI_API_KEY="test",
            ANTHROPIC_BASE_URL=server.anthropic_url,
            ANTHROPIC_API_KEY="test",
        ):
            handle = await client.start(agent, "read the report", workflow_id=wf)
            result = await handle.result()
    assert result.final_text == "I read the whole report.", result.final_text
    assert server.refused == 0
    history = await handle.fetch_history()
    types = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events]
    assert (activity in types) if activity else server.trimmed > 0, types
    return [handle]


def _page_reader(request: Request) -> Reply:
    """The local server's model: reads page after page (the next after the last call its
    request carries), then answers; asked to summarise, summarises."""
    body = json.dumps(request.body)
    if SUMMARY_INSTRUCTIONS[:60] in body:
        return text("Summary: dull pages.")
    read = [int(n) for n in re.findall(r'"p(\d+)"', body)]
    page = max(read) + 1 if read else 0
    if page >= COMPACT_PAGES:
        return text("I read the whole report.")
    return tool_calls((f"p{page}", "read_page", json.dumps({"page": page})))


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """The providers read their base URLs from the environment when first used."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def typed_output(client: AgentClient, wf: str) -> Runs:
    """An agent with an `output_type` whose first answer does not validate: the error goes
    back to the model (a user message, an `output_invalid` event) and its second answer is the
    run's typed output."""
    handle = await client.start("corpus-typed", "the largest city of France", workflow_id=wf)
    result = await handle.result()
    assert result.output == {"name": "Paris", "population": 2100000}, result.output
    return [handle]


async def typed_across_runs(client: AgentClient, wf: str) -> Runs:
    """A typed agent continued as new between answers that do not validate: each run's input
    carries the count so far (`output_failures`), and the third answer is the output."""
    handle = await client.start(
        "corpus-typed-can", "the largest city of France", workflow_id=wf, continue_as_new_at_bytes=1
    )
    result = await handle.result()
    assert result.output == {"name": "Paris", "population": 2100000}, result.output
    runs = await chain(client.client, handle)
    carried = [(await run_input(client.client, run)).output_failures for run in runs]
    assert carried == [0, 1, 2], carried
    return runs


async def guardrails(client: AgentClient, wf: str) -> Runs:
    """Guardrails as activities: the input passes, a tool guardrail refuses the model's call
    (an error result it sees), an output guardrail trips on the answer and the run ends
    `guardrail_tripped`."""
    handle = await client.start("corpus-guarded", "clean the database", workflow_id=wf)
    result = await handle.result()
    assert result.outcome == "guardrail_tripped", result.outcome
    return [handle]


async def fallback(client: AgentClient, wf: str) -> Runs:
    """A primary model that fails for good, then its fallback answering the same call."""
    handle = await client.start("corpus-fallback", "anyone there?", workflow_id=wf)
    result = await handle.result()
    assert result.final_text == "the backup answers", result.final_text
    return [handle]


async def attachments(client: AgentClient, wf: str) -> Runs:
    """A waiting call answered with an image (inline bytes) and a file by URL: its result
    message carries them to the next model call."""
    handle = await client.start("corpus-asker", "may I refund?", workflow_id=wf)
    await wait_pending(client, wf, "m1")
    receipt = Image(data=b"\x89PNG\r\n\x1a\n receipt", media_type="image/png")
    policy = File(url="https://example.com/refunds.pdf", filename="refunds.pdf")
    await client.resolve(wf, "m1", "yes, see the receipt", attachments=[receipt, policy])
    result = await handle.result()
    [answer] = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert answer.attachments == [receipt, policy], answer
    return [handle]


Scenario = Callable[[AgentClient, str], Awaitable[Runs]]


@dataclass(frozen=True)
class Recording:
    scenario: Scenario
    several_runs: bool = False
    """Saved as -1, -2...: a continue-as-new chain, or a run and its resumption."""


SCENARIOS: dict[str, Recording] = {
    "parallel": Recording(parallel),
    "external-late": Recording(external_late),
    "long-running-early": Recording(long_running_early),
    "approvals": Recording(approvals),
    "handoffs": Recording(handoffs),
    "hook-inject": Recording(hook_inject),
    "hook-stop": Recording(hook_stop),
    "can": Recording(can, several_runs=True),
    "deadline": Recording(deadline),
    "deadline-fails": Recording(deadline_fails),
    "fast": Recording(fast),
    "snapshot": Recording(snapshot, several_runs=True),
    "conversation": Recording(conversation),
    "stream": Recording(stream),
    "interrupt": Recording(interrupt),
    "cancel-approval": Recording(cancel_approval),
    "send": Recording(send),
    "sub-agents": Recording(sub_agents, several_runs=True),
    "budget": Recording(budget, several_runs=True),
    "mcp": Recording(mcp),
    "compact": Recording(compact),
    "typed-output": Recording(typed_output),
    "typed-output-event": Recording(typed_output),
    "typed-can": Recording(typed_across_runs, several_runs=True),
    "guardrails": Recording(guardrails),
    "guardrails-local": Recording(guardrails),
    "guardrails-in-tool": Recording(guardrails),
    "fallback": Recording(fallback),
    "attachments": Recording(attachments),
    "count": Recording(count),
    "server-side": Recording(server_side),
}


async def chain(client: Client, first: WorkflowHandle[Any, Any]) -> Runs:
    """Every run of a continue-as-new chain, from its first, by run id."""
    runs: Runs = []
    run_id = first.first_execution_run_id or first.run_id
    while run_id:
        handle = client.get_workflow_handle(first.id, run_id=run_id)
        runs.append(handle)
        last = (await handle.fetch_history()).events[-1]
        continued = last.workflow_execution_continued_as_new_event_attributes
        ended_by_switch = last.HasField("workflow_execution_continued_as_new_event_attributes")
        run_id = continued.new_execution_run_id if ended_by_switch else None
    return runs


def file_names(prefix: str, name: str, runs: int) -> list[str]:
    if not SCENARIOS[name].several_runs:
        assert runs == 1, f"{name} made {runs} runs"
        return [f"{prefix}-{name}.json"]
    assert runs >= 2, f"{name} made only {runs} run"
    return [f"{prefix}-{name}-{i}.json" for i in range(1, runs + 1)]


async def record_corpus(names: list[str], prefix: str = PREFIX) -> list[Path]:
    env = await start_embedded(ui=False)
    written: list[Path] = []
    try:
        client = AgentClient(env.client, TASK_QUEUE)
        worker = create_worker(
            env.client, agents, task_queue=TASK_QUEUE, interceptors=[_GateInterceptor()]
        )
        async with worker:
            recorded: dict[str, list[WorkflowHistory]] = {}
            for name in names:
                runs = await SCENARIOS[name].scenario(client, f"{prefix}-{name}")
                recorded[name] = [await run.fetch_history() for run in runs]
        for name, histories in recorded.items():
            if SCENARIOS[name].several_runs:
                forget_runs(prefix, name)
            for file_name, history in zip(
                file_names(prefix, name, len(histories)), histories, strict=True
            ):
                written.append(save(file_name, history))
    finally:
        await env.shutdown()
    return written


def save(file_name: str, history: WorkflowHistory) -> Path:
    """The history's events, and its workflow id (`workflowId`): a replay must run under the
    recorded id, since child workflow ids derive from it (histories before corpus-v3's
    sub-agents have none: their file name serves)."""
    HISTORIES.mkdir(exist_ok=True)
    path = HISTORIES / file_name
    recorded = json.loads(history.to_json())
    path.write_text(json.dumps({"workflowId": history.workflow_id, **recorded}))
    return path


def forget_runs(prefix: str, name: str) -> None:
    """Re-recording a chain: its earlier files go, so a shorter chain leaves none behind."""
    for old in HISTORIES.glob(f"{prefix}-{name}-*.json"):
        if old.stem.rsplit("-", 1)[1].isdigit():
            old.unlink()


# ---------------------------------------------------------------------------- everything


async def record_everything(name: str) -> Path:
    """The older all-in-one run of the `triage` agent (everything*.json)."""
    path = HISTORIES / f"{name}.json"
    if path.exists():
        raise SystemExit(f"{path} exists: it is a run recorded by older code, never replace it")
    env = await start_embedded(ui=False)
    try:
        client = AgentClient(env.client, TASK_QUEUE)
        async with create_worker(env.client, agents, task_queue=TASK_QUEUE):
            handle = await client.start("triage", "help me", workflow_id=f"replay-{name}")

            async def waiting_for(n: int) -> bool:
                return len(await client.pending(handle.id)) == n

            await eventually(lambda: waiting_for(3))
            await handle.signal("tool_result", {"tool_call_id": "nope", "content": "x"})
            await client.resolve(handle.id, "c4", "yes, refund")
            await client.decide(handle.id, "c2", approved=False, reason="not today")
            await client.resolve(handle.id, "c3", {"rows": 42})
            await eventually(lambda: waiting_for(1))
            await client.say(handle.id, "Billing here: refund issued.", name="billing")
            await handle.result()
        history = await handle.fetch_history()
    finally:
        await env.shutdown()
    path.write_text(history.to_json())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.record_histories")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--prefix", default=PREFIX, help="file and workflow id prefix")
    parser.add_argument("--everything", metavar="NAME", help="record the triage run as NAME")
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    if args.everything:
        print(asyncio.run(record_everything(args.everything)))
        return
    for path in asyncio.run(record_corpus(args.scenarios or list(SCENARIOS), args.prefix)):
        print(path)


if __name__ == "__main__":
    main()
