"""Live runs (issue 12): what watching a run costs and how soon people see the reply.

The model is `PacedProvider`: it streams numbered tokens (`t0 t1 ...`) at `RATE` a second, as a
hosted model does, and notes when it emitted each. The worker runs in a process of its own, as
deployed; observers and senders run in the bench's. Both read `time.monotonic()`, which on
Linux is one clock for every process, so an observer's latency is its receive time minus the
token's emission time.

Measured, on a fresh dev server:
1. observer latency: one `AgentClient.events` reader, provider delta to observer;
2. history bytes, events and workflow tasks per 1,000 streamed tokens: the same call with
   `Agent(stream=True)` and `stream=False`;
3. many observers on one run (direct `events` readers; SSE clients of `durable-agent serve`
   when it is installed): the run's wall time against none, their latency, and updates sent
   meanwhile (never refused, their latency);
4. time to first token: `send` + `events` against `start` + polling `history` every 250 ms.

`python -m bench.live --address HOST:PORT --queue Q --emissions FILE` is the worker process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from temporalio import activity
from temporalio.client import WorkflowHandle

from durable_agent import (
    Agent,
    AgentRunResult,
    AssistantMessage,
    Item,
    LiveEvent,
    ModelRequest,
    ModelResponse,
    SubmitResult,
    Usage,
    UserMessageSignal,
)
from durable_agent.activities.providers import DeltaSink
from durable_agent.client import AgentClient
from durable_agent.devserver import start_embedded
from durable_agent.worker import connect, create_worker

from .buses import BUSES, bus
from .live_many import Many, measure_many
from .measure import Cost, history_cost

ROOT = Path(__file__).resolve().parent.parent
RATE = 80.0
"""Tokens a second: a hosted model's pace (they stream about 50-100)."""
STREAMED, UNSTREAMED = "bench-live", "bench-live-unstreamed"
"""The agents: the paced model with `stream=True` (the default) and with `stream=False`."""
HISTORY_POLL = 0.25
"""How often a client without `events` polled the `history` query for the reply."""
TOKEN = re.compile(r"t(\d+) ")


def prompt(tokens: int) -> str:
    return f"tokens={tokens}"


class PacedProvider:
    """`paced:<anything>`: the first call of a run streams as many tokens as its first user
    message asks for (`tokens=N`), at `RATE` a second, whether or not it streams to observers
    (so the two runs of the history comparison take the same time); later calls answer
    "noted" at once. Streamed tokens' emission times go to `emissions`, a line each:
    `<workflow id> <token> <time.monotonic()>`."""

    def __init__(self, emissions: Path) -> None:
        self._emissions = emissions

    async def complete(
        self, request: ModelRequest, model_name: str, sink: DeltaSink | None = None
    ) -> ModelResponse:
        if any(m.role == "assistant" for m in request.messages):
            return ModelResponse(message=AssistantMessage(content="noted"))
        first = next(m for m in request.messages if m.role == "user")
        match = re.fullmatch(r"tokens=(\d+)", str(first.content))
        tokens = int(match.group(1)) if match else 0
        begun = time.monotonic()
        emitted: list[float] = []
        for n in range(tokens):
            # A fixed schedule, so a late wake-up does not slow the rest of the reply.
            await asyncio.sleep(max(0.0, begun + n / RATE - time.monotonic()))
            emitted.append(time.monotonic())
            if sink is not None:
                sink.text(f"t{n} ")
        if sink is not None and emitted:
            wid = activity.info().workflow_id
            lines = "".join(f"{wid} {n} {t!r}\n" for n, t in enumerate(emitted))
            await asyncio.to_thread(_append, self._emissions, lines)
        text = "".join(f"t{n} " for n in range(tokens))
        usage = Usage(requests=1, output_tokens=tokens)
        return ModelResponse(message=AssistantMessage(content=text), usage=usage)


def _append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def _emission_times(path: Path, workflow_id: str) -> dict[int, float]:
    times: dict[int, float] = {}
    for line in path.read_text().splitlines() if path.exists() else ():
        wid, n, t = line.split()
        if wid == workflow_id:
            times[int(n)] = float(t)
    return times


def agents() -> list[Agent]:
    return [
        Agent(STREAMED, model="paced:bench"),
        Agent(UNSTREAMED, model="paced:bench", stream=False),
    ]


@dataclass
class LivePlan:
    latency_tokens: int = 600
    """The observer-latency call (7.5 s at `RATE`), also the history comparison's."""
    load_tokens: int = 320
    observers: int = 50
    updates: int = 20
    """`submit_user_message` updates sent during each loaded call."""
    load_repeats: int = 3
    first_token_tokens: int = 100
    first_token_repeats: int = 5
    many_runs: int = 200
    """Runs streaming at once on one worker, one reader each (issue 20)."""
    many_tokens: int = 160


QUICK_LIVE = LivePlan(
    latency_tokens=60,
    load_tokens=60,
    observers=5,
    updates=4,
    load_repeats=1,
    first_token_tokens=20,
    first_token_repeats=1,
    many_runs=10,
    many_tokens=40,
)


@dataclass
class Watch:
    """What one observer saw of a run: when each token's delta arrived, and when the reply's
    message did (None if it never came)."""

    deltas: dict[int, float] = field(default_factory=dict)
    message: float | None = None


@dataclass
class Latency:
    """Observers' latencies (seconds) from the provider's emission of a token: until its delta
    arrived (`deltas`, the deltas seen), and until its text was shown, by its delta or else by
    the reply's message (`shown`, every token of every observer that saw the message)."""

    deltas: list[float] = field(default_factory=list)
    shown: list[float] = field(default_factory=list)
    expected: int = 0
    """Deltas the observers would have seen had each seen every one."""

    def add(self, watch: Watch, emitted: dict[int, float]) -> None:
        self.expected += len(emitted)
        self.deltas += [t - emitted[n] for n, t in watch.deltas.items() if n in emitted]
        for n, at in emitted.items():
            shown = watch.deltas.get(n, watch.message)
            if shown is not None:
                self.shown.append(shown - at)

    def p(self, q: float) -> float | None:
        return percentile(self.deltas, q)

    @property
    def coverage(self) -> float:
        """The share of deltas observers saw (the rest reached them only in the message)."""
        return len(self.deltas) / self.expected if self.expected else 0.0


@dataclass
class StreamCost:
    """One call's history with and without streaming."""

    tokens: int
    streamed: Cost
    unstreamed: Cost
    tasks: tuple[int, int]
    """Workflow tasks completed: streamed, unstreamed."""
    signals: tuple[int, int]

    def per_thousand(self, extra: float) -> float:
        return extra * 1000 / self.tokens


Cpu = dict[str, float]
"""CPU seconds by process: `server` (the dev server), `worker`, `serve` and `observers` (this
process), and the whole `machine`'s; a process that was not found is left out."""


@dataclass
class Load:
    """Runs of one observer setup: wall times, observers' latencies, updates sent meanwhile."""

    label: str
    observers: int
    walls: list[float] = field(default_factory=list)
    latency: Latency = field(default_factory=Latency)
    updates: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    update_latencies: list[float] = field(default_factory=list)
    incomplete: int = 0
    """Observers that had not seen the run's end when it was over (plus a grace period)."""
    cpu: list[Cpu] = field(default_factory=list)
    """Each run's, from its start until its observers are done."""

    def cpu_median(self, process: str) -> float | None:
        used = [c[process] for c in self.cpu if process in c]
        return statistics.median(used) if used else None


@dataclass
class FirstToken:
    send: list[float]
    poll: list[float]


@dataclass
class LiveResult:
    bus: str
    """Which live bus the deltas took (`bench.buses.BUSES`)."""
    rate: float
    latency: Latency
    cost: StreamCost
    loads: list[Load]
    first_token: FirstToken
    notes: list[str]
    many: Many | None = None


def percentile(samples: list[float], q: float) -> float | None:
    """Nearest rank: the smallest sample with at least `q` of them at or below it."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = math.ceil(q * len(ordered) - 1e-9)  # the epsilon: 0.55 * 100 is 55.00000000000001
    return ordered[max(0, min(len(ordered), rank) - 1)]


class LiveWorker:
    """The live agents' worker in a subprocess (`python -m bench.live`)."""

    def __init__(self, address: str, queue: str, emissions: Path) -> None:
        argv = [sys.executable, "-m", "bench.live", "--address", address, "--queue", queue]
        argv += ["--emissions", str(emissions)]
        self.process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("bench live worker did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()  # stuck in shutdown: the measurement is over anyway
            self.process.wait(timeout=10)


async def observe(events: AsyncIterator[LiveEvent]) -> Watch:
    """Receive times of the streamed tokens and of the reply's message, until the stream ends."""
    watch = Watch()
    async for event in events:
        received = time.monotonic()
        if event.delta is not None and event.delta.kind == "text":
            # A delta may carry several tokens: the publisher batches what arrives while it
            # writes, and each of them reached the observer now.
            for match in TOKEN.finditer(event.delta.text):
                watch.deltas.setdefault(int(match.group(1)), received)
        elif watch.message is None and _is_reply(event.item):
            watch.message = received
    return watch


Reader = Callable[[AgentClient, str], AsyncIterator[LiveEvent]]
"""An observer of a run: given a client and the run's id, the events it receives."""


def direct_reader(client: AgentClient, workflow_id: str) -> AsyncIterator[LiveEvent]:
    """`AgentClient.events`, each observer with its own loop of `live` queries."""
    return client.events(workflow_id)


def sse_reader(http: httpx2.AsyncClient, base_url: str) -> Reader:
    """A client of `durable-agent serve`'s SSE route: what a browser's EventSource receives."""

    async def read(client: AgentClient, workflow_id: str) -> AsyncIterator[LiveEvent]:
        url = f"{base_url}/runs/{workflow_id}/events"
        async with http.stream("GET", url, timeout=None) as response:
            response.raise_for_status()
            # Frames split by hand, not line by line: 50 clients in one process are
            # otherwise CPU-bound on a small machine, and their latency would be theirs.
            pending = b""
            async for chunk in response.aiter_bytes():
                *frames, pending = (pending + chunk).split(b"\n\n")
                for frame in frames:
                    _, data, json = frame.rpartition(b"\ndata: ")
                    if data:  # not a ": keep-alive" comment
                        yield LiveEvent.model_validate_json(json)

    return read


@contextlib.asynccontextmanager
async def serving(address: str, queue: str) -> AsyncIterator[tuple[Reader, int]]:
    """`durable-agent serve` in a process of its own on a loopback port, as a user runs it, and
    a reader of its SSE route with the process's id. Raises ImportError when this install has
    no `serve`."""
    import durable_agent.serve  # noqa: F401 - the command's own import, to fail early

    with socket.socket() as probe:  # a free port; the command binds it a moment later
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [str(Path(sys.executable).parent / "durable-agent"), "serve", "--address", address]
    argv += ["--task-queue", queue, "--port", str(port)]
    process = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient() as http:
            for _ in range(200):  # bounded: 20 s
                with contextlib.suppress(httpx2.TransportError):
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        break
                if process.returncode is not None:
                    raise RuntimeError(f"durable-agent serve exited ({process.returncode})")
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("durable-agent serve did not answer /healthz in 20 s")
            yield sse_reader(http, base), process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()  # stuck in shutdown: the measurement is over anyway
            await process.wait()


async def measure_latency(
    client: AgentClient, emissions: Path, tokens: int
) -> tuple[Latency, WorkflowHandle[Any, AgentRunResult]]:
    """One streamed call with one observer; returns its latencies and the run's id."""
    handle = await client.start(STREAMED, prompt(tokens), workflow_id=_id("latency"))
    watch = await asyncio.wait_for(observe(direct_reader(client, handle.id)), _call_timeout(tokens))
    await handle.result()
    latency = Latency()
    latency.add(watch, _emission_times(emissions, handle.id))
    return latency, handle


async def measure_cost(
    client: AgentClient, streamed: WorkflowHandle[Any, AgentRunResult], tokens: int
) -> StreamCost:
    """The streamed run measured already against the same call unstreamed."""
    unstreamed = await client.start(UNSTREAMED, prompt(tokens), workflow_id=_id("unstreamed"))
    await asyncio.wait_for(unstreamed.result(), _call_timeout(tokens))
    costs, tasks, signals = [], [], []
    for handle in (streamed, unstreamed):
        costs.append(await history_cost(client.client, handle.id, handle.first_execution_run_id))
        events = (await handle.fetch_history()).events
        tasks.append(sum(e.HasField("workflow_task_completed_event_attributes") for e in events))
        signals.append(
            sum(e.HasField("workflow_execution_signaled_event_attributes") for e in events)
        )
    return StreamCost(tokens, costs[0], costs[1], (tasks[0], tasks[1]), (signals[0], signals[1]))


async def loaded_run(
    client: AgentClient,
    emissions: Path,
    plan: LivePlan,
    load: Load,
    reader: Reader | None,
    cpu: CpuMeter,
) -> None:
    """One streamed call with `load.observers` observers (read through `reader`), and
    `plan.updates` user messages sent during it, spread over the call."""
    used = cpu.read()
    started = time.monotonic()
    handle = await client.start(STREAMED, prompt(plan.load_tokens), workflow_id=_id("load"))
    watchers = (
        []
        if reader is None
        else [
            asyncio.ensure_future(observe(reader(client, handle.id))) for _ in range(load.observers)
        ]
    )
    call = plan.load_tokens / RATE
    senders = [
        asyncio.ensure_future(_update(client, handle.id, 0.2 + n * call * 0.8 / plan.updates))
        for n in range(plan.updates)
    ]
    await asyncio.wait_for(handle.result(), _call_timeout(plan.load_tokens))
    load.walls.append(time.monotonic() - started)
    for outcome in await asyncio.gather(*senders):
        load.updates += 1
        if isinstance(outcome, str):
            load.errors.append(outcome)
        else:
            accepted, seconds = outcome
            load.refused += not accepted
            load.update_latencies.append(seconds)
    done, pending = await asyncio.wait(watchers, timeout=10) if watchers else (set(), set())
    for late in pending:
        late.cancel()
    load.incomplete += len(pending)
    load.cpu.append(CpuMeter.since(used, cpu.read()))
    emitted = _emission_times(emissions, handle.id)
    for watcher in done:
        load.latency.add(watcher.result(), emitted)


async def _update(client: AgentClient, workflow_id: str, delay: float) -> tuple[bool, float] | str:
    """One `submit_user_message` after `delay`, with no retry: an RPC error is counted, not
    hidden. (accepted, seconds) or the error."""
    await asyncio.sleep(delay)
    started = time.monotonic()
    try:
        result: SubmitResult = await client.handle(workflow_id).execute_update(
            "submit_user_message",
            UserMessageSignal(content="meanwhile"),
            result_type=SubmitResult,
        )
    except Exception as exc:  # counted: the goal is none
        return f"{type(exc).__name__}: {exc}"
    return result.accepted, time.monotonic() - started


async def first_token_send(client: AgentClient, tokens: int) -> float:
    """`send` (update-with-start) and `events` until the first text delta (or the reply's
    message, if the call ended between two reads)."""
    thread = _id("send")
    started = time.monotonic()
    await client.send(STREAMED, prompt(tokens), thread_id=thread)
    first: float | None = None
    try:
        async for event in client.events(thread):
            if first is None and _has_text(event):
                first = time.monotonic() - started
            if _is_reply(event.item):  # the call is over: cancelling now cuts nothing off
                break
    finally:
        await client.cancel(thread)  # a conversation waits for its next message for ever
    if first is None:
        raise RuntimeError("the conversation ended before its reply")
    return first


def _is_reply(item: Item | None) -> bool:
    return isinstance(item, AssistantMessage) and bool(item.content)


def _has_text(event: LiveEvent) -> bool:
    delta = event.delta
    return _is_reply(event.item) or (delta is not None and delta.kind == "text")


async def first_token_poll(client: AgentClient, tokens: int) -> float:
    """What a client did before `events`: `start`, then the `history` query every 250 ms
    until the assistant's message is there."""
    started = time.monotonic()
    handle = await client.start(STREAMED, prompt(tokens), workflow_id=_id("poll"))
    try:
        while True:
            page = await client.history(handle.id)
            if any(_is_reply(i) for i in page.items):
                return time.monotonic() - started
            await asyncio.sleep(HISTORY_POLL)
    finally:
        await handle.result()


async def measure(plan: LivePlan) -> list[LiveResult]:
    """Every live measurement for each live bus, one after the other (each on a fresh dev
    server: the buses do not share one's history or caches)."""
    results = []
    for name in BUSES:
        try:
            with bus(name):
                results.append(await measure_bus(plan, name))
        except RuntimeError as exc:  # its server is not installed here, or did not start
            print(f"live runs on the {name} not measured: {exc}", file=sys.stderr)
    return results


async def measure_bus(plan: LivePlan, bus_name: str) -> LiveResult:
    """Every live measurement on a fresh dev server, the worker in a process of its own."""
    env = await start_embedded(ui=False)
    emissions = Path(tempfile.mkdtemp(prefix="bench-live-")) / "emissions"
    queue = f"live-{uuid.uuid4().hex[:8]}"
    target = env.client.service_client.config.target_host
    worker = LiveWorker(target, queue, emissions)
    notes = [
        f"Live runs: a paced model streaming {RATE:.0f} tokens/s, the first at once; the "
        "worker and `durable-agent serve` in processes of their own, observers in the bench's "
        "(one Temporal connection; SSE clients over loopback HTTP). Delta latency is over "
        "the deltas observers saw; 'text shown' counts each token when its delta or else the "
        "message reached the observer."
    ][: 0 if bus_name != BUSES[0] else 1]
    try:
        client = AgentClient(env.client, queue)
        cpu = CpuMeter(worker.process.pid)
        await first_token_send(client, 5)  # warm: the worker's first tasks fill its caches
        await first_token_poll(client, 5)
        latency, streamed = await measure_latency(client, emissions, plan.latency_tokens)
        cost = await measure_cost(client, streamed, plan.latency_tokens)
        setups: dict[str, tuple[int, Reader | None]] = {
            "none": (0, None),
            f"{plan.observers} `AgentClient.events` readers": (plan.observers, direct_reader),
        }
        async with contextlib.AsyncExitStack() as stack:
            try:
                sse, serve_pid = await stack.enter_async_context(serving(target, queue))
                cpu.watch("serve", serve_pid)
                setups[f"{plan.observers} SSE clients of one `durable-agent serve`"] = (
                    plan.observers,
                    sse,
                )
            except (ImportError, RuntimeError) as exc:  # not installed here, or did not start
                notes.append(f"SSE clients of `durable-agent serve` not measured: {exc}")
            loads = {label: Load(label, n) for label, (n, _) in setups.items()}
            for _ in range(plan.load_repeats):  # round-robin: a noisy moment hurts each alike
                for label, (_, reader) in setups.items():
                    await loaded_run(client, emissions, plan, loads[label], reader, cpu)
        first = FirstToken([], [])
        for r in range(plan.first_token_repeats):  # interleaved, alternating which goes first
            pair = [(first.send, first_token_send), (first.poll, first_token_poll)]
            for samples, how in pair if r % 2 == 0 else pair[::-1]:
                samples.append(await how(client, plan.first_token_tokens))
        many = Many(plan.many_runs, plan.many_tokens)
        expected = "".join(f"t{n} " for n in range(plan.many_tokens))
        await measure_many(client, STREAMED, prompt(plan.many_tokens), expected, many, cpu)
        loaded = list(loads.values())
        return LiveResult(bus_name, RATE, latency, cost, loaded, first, notes, many)
    finally:
        worker.stop()
        shutil.rmtree(emissions.parent, ignore_errors=True)
        await env.shutdown()


class CpuMeter:
    """CPU seconds used so far by the dev server, the worker, `serve` and this process (the
    observers): where the load of watching lands. Linux only (/proc), as the bench is."""

    def __init__(self, worker_pid: int) -> None:
        me = str(os.getpid())
        servers = [
            int(stat.parent.name)
            for stat in Path("/proc").glob("[0-9]*/stat")
            if _stat(stat)[:2] == ["temporal", me]
        ]
        self._pids = {"worker": worker_pid}
        if len(servers) == 1:
            self._pids["server"] = servers[0]

    def watch(self, name: str, pid: int) -> None:
        self._pids[name] = pid

    def read(self) -> Cpu:
        ticks = os.sysconf("SC_CLK_TCK")
        used = {"observers": time.process_time()}
        # The whole machine's busy time (all but idle and iowait): on a shared machine, what
        # other processes took is the difference, and it slows every figure.
        user, nice, system, _idle, _iowait, *rest = Path("/proc/stat").read_text().split()[1:9]
        used["machine"] = sum(int(v) for v in (user, nice, system, *rest)) / ticks
        for name, pid in self._pids.items():
            fields = _stat(Path(f"/proc/{pid}/stat"))
            if fields:
                used[name] = (int(fields[11]) + int(fields[12])) / ticks
        return used

    @staticmethod
    def since(before: Cpu, now: Cpu) -> Cpu:
        return {name: now[name] - before[name] for name in now if name in before}


def _stat(path: Path) -> list[str]:
    """/proc/PID/stat's fields from the command's name on (the name may hold spaces), with
    the name unwrapped; [] when the process is gone."""
    try:
        text = path.read_text()
    except OSError:
        return []
    name, _, rest = text.partition(" (")[2].rpartition(") ")
    return [name, *rest.split()[1:]]


def _call_timeout(tokens: int) -> float:
    return 60.0 + tokens / RATE * 3


def _id(tag: str) -> str:
    return f"bench-live-{tag}-{uuid.uuid4().hex[:8]}"


async def run_worker(address: str, queue: str, emissions: Path) -> None:
    """The worker process: the live agents, with the paced provider."""
    client = await connect(address)
    providers: dict[str, Any] = {"paced": PacedProvider(emissions)}
    worker = create_worker(client, agents(), task_queue=queue, providers=providers)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.live")
    parser.add_argument("--address", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--emissions", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(run_worker(args.address, args.queue, args.emissions))
    os._exit(0)  # skip interpreter finalization (temporalio/sdk-python#300)
