"""The benchmark still runs (tiny sizes). No timing is asserted: speed goals live in bench/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # 18-32 s: the whole quick benchmark
def test_quick_bench_writes_its_tables(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "bare,durable-agent",
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
