"""bench/parked.py still runs, on a handful of runs (the 1,000 and 10,000 are `make bench`'s).
Nothing timed is asserted: that none is lost is."""

from __future__ import annotations

import pytest

from bench import parked


@pytest.mark.slow  # ~15 s: a dev server, a worker process, 10 runs parked and resolved
async def test_parked_runs_are_all_resolved_by_signal_and_the_table_says_so() -> None:
    result = await parked.measure((5, 10))
    assert [level.runs for level in result.levels] == [5, 10]
    assert all(level.rss_mb > 0 for level in result.levels)
    assert (result.completed, result.lost) == (10, [])
    text = "\n".join(parked.table(result))
    assert "| 10 |" in text
    assert "10 completed, 0 lost" in text
