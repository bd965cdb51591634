"""The benchmark still runs (tiny sizes). No timing is asserted: speed goals live in bench/."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.live import Latency, Watch, percentile

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # 35-60 s: the whole quick benchmark, live runs included
def test_quick_bench_writes_its_tables(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    argv = [sys.executable, "-m", "bench", "--quick", "--only", "bare,durable-agent,live"]
    # A session of its own: on a timeout its dev server and worker processes go with it, not
    # only the bench process (they outlived a timed-out run and loaded the machine).
    bench = subprocess.Popen(
        [*argv, "--output", str(output)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = bench.communicate(timeout=240)
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
    assert bench.returncode == 0, out.decode()[-4000:]
    text = output.read_text()
    for heading in (
        "## Per-turn wall time",
        "## History per turn",
        "## Throughput and memory",
        "## Server requests a turn",
        "## Live runs: streaming to observers, ",  # then the bus it measured
        "## Goals",
    ):
        assert heading in text
    for variant in (
        "| floor (asyncio) |",
        "| bare |",
        "| durable-agent |",
        "| durable-agent fast |",
    ):
        assert variant in text
    assert "| openai-agents integration |" not in text, "--only is honoured"
    for row in (
        "| none |",
        "| 5 `AgentClient.events` readers |",
        "| 5 SSE clients of one `durable-agent serve` |",
        "| `send` (update-with-start) + `events` |",
        # Goals, one row per bus measured ("embedded bus: ...", "Redis bus: ...").
        " updates during a watched call: none refused, no RPC errors | yes |",
    ):
        assert row in text, row
    assert re.search(r" observer latency p50 ≤ \d+ ms, 1 observer \|", text)
    # The server's requests were counted: a turn of the default loop completes two workflow
    # tasks (one a model call's, one a tool call's), of fast mode far fewer.
    header = re.search(r"\| request \|([^\n]*)\|\n", text)
    completions = re.search(r"\| RespondWorkflowTaskCompleted \|([^\n]*)\|\n", text)
    assert header and completions, text
    per_turn = dict(
        zip(
            (c.strip() for c in header[1].split("|")),
            (float(c) for c in completions[1].split("|")),
            strict=True,
        )
    )
    assert per_turn["bare"] >= 2 and per_turn["durable-agent"] >= 2, per_turn
    assert per_turn["durable-agent fast"] < 1, per_turn
    assert "not counted" not in text
    assert "`durable-agent serve` not measured" not in text


def test_text_is_shown_by_the_delta_else_by_the_message() -> None:
    """A token whose delta an observer missed counts from its emission to the message."""
    latency = Latency()
    latency.add(Watch(deltas={0: 1.1, 1: 1.3}, message=2.0), {0: 1.0, 1: 1.2, 2: 1.4})
    latency.add(Watch(deltas={}, message=None), {0: 1.0, 1: 1.2, 2: 1.4})  # never saw the end
    assert latency.coverage == pytest.approx(2 / 6)
    assert sorted(latency.deltas) == pytest.approx([0.1, 0.1])
    assert sorted(latency.shown) == pytest.approx([0.1, 0.1, 0.6])
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0
    assert percentile([], 0.5) is None
