"""Fault storms in CI (issue 10, item 4): `python -m faults --quick`, the time-bounded version of
`make faults` (worker SIGKILLs, provider faults, signal and update storms, dev server
restarts, on real processes), must lose no run, no message and no result, and the
idempotency-key pattern must apply no side effect twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # ~85 s: four storms on a dev server and three worker processes
def test_quick_fault_storms_lose_nothing(tmp_path: Path) -> None:
    figures_file = tmp_path / "figures.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "faults", "--quick"),
            *("--output", str(tmp_path / "reliability.md"), "--json", str(figures_file)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert figures_file.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    figures = json.loads(figures_file.read_text())
    assert [f["storm"][0] for f in figures] == ["a", "c", "d", "b"]
    for storm in figures:
        name = storm["storm"]
        assert storm["started"] > 0, name
        assert storm["completed"] == storm["started"], (name, storm["problems"])
        assert storm["messages_lost"] == 0, (name, storm["problems"])
        assert storm["unpaired"] == 0, (name, storm["problems"])
        assert storm["keyed_repeats"] == 0, (name, storm["problems"])
        assert storm["problems"] == [], name
    assert done.returncode == 0, done.stdout[-4000:]
