"""The benchmark still runs (tiny sizes). No timing is asserted: speed goals live in bench/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.live import Latency, Watch, percentile

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # 35-60 s: the whole quick benchmark, live runs included
def test_quick_bench_writes_its_tables(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "bare,durable-agent,live",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=240,
    )
    text = output.read_text()
    for heading in (
        "## Per-turn wall time",
        "## History per turn",
        "## Throughput and memory",
        "## Live runs: streaming to observers (issue 12)",
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
        "| observer latency p50 ≤ 100 ms, 1 observer |",
        "| updates during a watched call: none refused, no RPC errors | yes |",
    ):
        assert row in text, row
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
