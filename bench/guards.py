"""Typed outputs and guardrails (issue 19): what they cost a turn when they do nothing.

The same scripted run (a tool call a turn, then the final answer) on one worker, five ways:
plain; with an `output_type` (the answer validated in the workflow); with an input and an
output guardrail that pass (two `guardrail.*` local activities a run); with a tool guardrail
that passes, checked inside each call's tool activity (the default); and with the same
guardrail as a local activity of its own per call (`local=True`, every tool guardrail before
the `tool-guardrails-in-activity` patch); and plain again, to show the noise floor. Runs
alternate, in a rotating order, so a noisy minute hurts each alike; the table gives the median
seconds per turn, the ratio of medians to plain and the median of per-round ratios to plain.

    python -m bench --only guards
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from dataclasses import dataclass

from pydantic import BaseModel
from temporalio.client import Client

from durable_agent import (
    Agent,
    AssistantMessage,
    ScriptedModel,
    ToolCall,
    input_guardrail,
    output_guardrail,
    tool,
    tool_guardrail,
)
from durable_agent._output import OutputSpec
from durable_agent.client import AgentClient
from durable_agent.worker import create_worker

from .live import CpuMeter


class Answer(BaseModel):
    summary: str
    turns: int


@tool
def step(n: int) -> str:
    """One step.

    Args:
        n: Which.
    """
    return f"step {n} done"


def _passes(*_: object) -> None:
    return None


def _script(turns: int) -> list[str | AssistantMessage]:
    calls: list[str | AssistantMessage] = [
        AssistantMessage(tool_calls=[ToolCall(id=f"s{n}", name="step", arguments=f'{{"n": {n}}}')])
        for n in range(turns - 1)
    ]
    return [*calls, json.dumps({"summary": "all steps done", "turns": turns})]


def agents(turns: int) -> dict[str, Agent]:
    def made(label: str, **options: object) -> Agent:
        name = f"bench-guards-{label}"
        model = ScriptedModel(f"{name}-{uuid.uuid4().hex[:6]}", _script(turns))
        return Agent(name, model=model, tools=[step], max_turns=turns + 1, **options)  # type: ignore[arg-type]

    return {
        "plain": made("plain"),
        # The same agent again: how far two runs of one thing differ here (the noise floor).
        "plain, again": made("plain-again"),
        "output_type": made("typed", output_type=Answer),
        "input + output guardrails": made(
            "io",
            guardrails=[
                input_guardrail(_passes, name="bench_in"),
                output_guardrail(_passes, name="bench_out"),
            ],
        ),
        "tool guardrail": made("tool", guardrails=[tool_guardrail(_passes, name="bench_tool")]),
        # As every tool guardrail ran before the `tool-guardrails-in-activity` patch.
        "tool guardrail, own local activity": made(
            "tool-own",
            guardrails=[tool_guardrail(_passes, name="bench_tool_own", local=True)],
        ),
    }


@dataclass(frozen=True)
class GuardCost:
    label: str
    turns: int
    per_turn: float
    ratio: float
    paired: float
    """The median over rounds of this run's time over plain's in the same round: a slow
    minute slows both, so it cancels out of the ratio."""
    cpu_per_turn: float
    """CPU seconds a turn of the dev server and this process (worker and client): what the
    run costs the machine, which other people's load disturbs less than the time taken."""
    cpu_paired: float
    """As `paired`, for the CPU."""
    validation_us: float = 0.0
    """One answer's validation alone, in process (what the workflow adds at the end)."""


def validation_cost(rounds: int = 10_000) -> float:
    """Microseconds to validate one answer against `Answer`, as the workflow does."""
    spec = OutputSpec(Answer)
    answer = json.dumps({"summary": "all steps done", "turns": 20})
    started = time.perf_counter()
    for _ in range(rounds):
        spec.validate(answer)
    return (time.perf_counter() - started) / rounds * 1e6


async def measure(client: Client, turns: int, repeats: int) -> list[GuardCost]:
    chosen = agents(turns)
    queue = f"bench-guards-{uuid.uuid4().hex[:8]}"
    samples: dict[str, list[float]] = {label: [] for label in chosen}
    cpu: dict[str, list[float]] = {label: [] for label in chosen}
    meter = CpuMeter(os.getpid())
    async with create_worker(client, list(chosen.values()), task_queue=queue):
        runner = AgentClient(client, queue)
        for agent in chosen.values():  # one warm-up run each
            await (await runner.start(agent.name, "go")).result()
        labels = list(chosen)
        for repeat in range(repeats):
            # A new order each round: whoever runs right after another pays its cleanup.
            shift = repeat % len(labels)
            for label in labels[shift:] + labels[:shift]:
                agent = chosen[label]
                before, started = meter.read(), time.perf_counter()
                await (await runner.start(agent.name, "go")).result()
                samples[label].append((time.perf_counter() - started) / turns)
                used = CpuMeter.since(before, meter.read())
                cpu[label].append((used["worker"] + used.get("server", 0.0)) / turns)
    micro = validation_cost()
    return [
        GuardCost(
            label,
            turns,
            statistics.median(samples[label]),
            statistics.median(samples[label]) / statistics.median(samples["plain"]),
            _paired(samples[label], samples["plain"]),
            statistics.median(cpu[label]),
            _paired(cpu[label], cpu["plain"]),
            micro,
        )
        for label in chosen
    ]


def _paired(samples: list[float], plain: list[float]) -> float:
    return statistics.median(s / p for s, p in zip(samples, plain, strict=True) if p)


def table(results: list[GuardCost]) -> list[str]:
    turns = results[0].turns if results else 0
    rows = [
        "## Typed outputs and guardrails: cost per turn when they do nothing",
        "",
        f"A {turns}-turn scripted run (a tool call a turn), median seconds per turn, "
        "runs alternating (bench/guards.py). Goal: output validation and input/output "
        "guardrails within 5% of a plain turn.",
        "",
        "| run | s / turn | vs plain (medians) | vs plain (paired by round) "
        "| CPU ms / turn (server + worker) | CPU vs plain (paired) |",
        "|---|---|---|---|---|---|",
    ]
    rows += [
        f"| {r.label} | {r.per_turn:.4f} | {r.ratio:.3f}x | {r.paired:.3f}x "
        f"| {r.cpu_per_turn * 1000:.1f} | {r.cpu_paired:.3f}x |"
        for r in results
    ]
    if results:
        rows += [
            "",
            f"Validating one answer alone takes {results[0].validation_us:.1f} µs in process. "
            "Input and output guardrails run as local activities (inside the workflow task); "
            "a tool guardrail is checked inside the call's tool activity, or, with "
            "`local=True`, as a local activity of its own per call. `plain, again` is the "
            "plain agent measured twice: its distance from 1.000x is the noise of the run.",
        ]
    return [*rows, ""]
