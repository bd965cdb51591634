"""How a tool activity counts its own failures (issue 18), without a server: the count read from
heartbeat details, the error result once the tool's attempts are spent, the retry before that,
and the bound on a call whose workers keep dying. End to end with killed workers:
`test_crash_recovery.py`."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment

from durable_agent import tool
from durable_agent.activities.tool_failures import (
    OwnFailures,
    out_of_time,
    prior_failures,
    tool_failed,
)
from durable_agent.wire import ToolOutcome


@tool(
    retry=RetryPolicy(
        maximum_attempts=3,
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=3,
        non_retryable_error_types=["KeyError"],
    )
)
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: The key.
    """
    raise ConnectionError(f"no answer for {key}")


def info(**changes: object) -> activity.Info:
    return dataclasses.replace(ActivityEnvironment().info, **changes)  # type: ignore[arg-type]


def test_the_count_comes_from_heartbeat_details_or_a_local_activitys_attempt() -> None:
    assert prior_failures(info(attempt=4, heartbeat_details=[])) == 0  # three lost attempts
    assert prior_failures(info(attempt=4, heartbeat_details=[{"failures": 2}])) == 2
    assert prior_failures(info(attempt=4, heartbeat_details=["not ours"])) == 0
    assert prior_failures(info(attempt=3, is_local=True)) == 2


Beats = list[tuple[object, ...]]


def failed(exc: Exception, failures: int) -> tuple[ToolOutcome | ApplicationError, Beats]:
    """`tool_failed` in an activity: its result or the error it raised, and its heartbeats."""
    env = ActivityEnvironment()
    beats: Beats = []
    env.on_heartbeat = lambda *details: beats.append(details)
    try:
        return env.run(tool_failed, lookup, "c1", exc, failures, []), beats
    except ApplicationError as error:
        return error, beats


def test_a_failure_before_the_last_is_retried_after_the_tools_own_backoff() -> None:
    error, beats = failed(ConnectionError("no answer for SECRET"), 2)
    assert isinstance(error, ApplicationError)
    assert error.message == "ConnectionError from tool lookup (tool_call_id c1), attempt 2 of 3"
    assert error.type == "ConnectionError" and not error.non_retryable
    assert error.next_retry_delay == timedelta(seconds=6)  # 2 s x 3^(2-1)
    assert error.category is ApplicationErrorCategory.BENIGN  # the SDK logs it at DEBUG
    assert beats == [(OwnFailures(failures=2),)]


def test_the_last_failure_or_a_non_retryable_one_is_the_models_error_result() -> None:
    spent, beats = failed(ConnectionError("no answer for k"), 3)
    assert spent == ToolOutcome(content="tool lookup failed: no answer for k", is_error=True)
    assert beats == []
    listed, _ = failed(KeyError("k"), 1)  # in non_retryable_error_types
    assert listed == ToolOutcome(content="tool lookup failed: 'k'", is_error=True)
    marked, _ = failed(ApplicationError("refused", non_retryable=True), 1)
    assert marked == ToolOutcome(content="tool lookup failed: refused", is_error=True)


def test_a_call_whose_workers_keep_dying_ends_after_its_own_attempts_time() -> None:
    now = datetime.now(UTC)
    within = info(attempt=9, scheduled_time=now - timedelta(minutes=14))
    assert out_of_time(lookup, "c1", within, []) is None  # 3 attempts x 5 min
    past = info(attempt=9, scheduled_time=now - timedelta(minutes=16), heartbeat_details=[])
    ended = ActivityEnvironment().run(out_of_time, lookup, "c1", past, [])
    assert ended is not None and ended.is_error
    assert ended.content.startswith("tool lookup did not finish: 8 attempts ended without a")
