"""A tool fails only for its own reasons: attempts a dead worker lost are not the tool's.

The workflow runs a tool's activity with unlimited attempts (`Tool.activity_retry`). The
activity counts the tool's own exceptions across attempts in its heartbeat details, which the
server hands to the next attempt even when the worker died mid-call, and ends the call when
they reach the tool's `retry.maximum_attempts`: the last exception's text goes to the model as
an error result, as it always did. An attempt lost with its worker (a heartbeat or
start-to-close timeout, a lost task) counts nothing, so a worker killed three times during a
call no longer tells the model that the tool failed. Before, the fault storms counted 17 such
results in 96 runs.

Such a call is still bounded: an attempt that starts later than `timeout * maximum_attempts`
after the call was first scheduled (the time the tool's own attempts could have taken) ends
it with an error result; so a tool that hangs past its `timeout` every time gets as many
attempts as before. Each attempt that a worker lost may have run the tool's body in part:
the call is at least once, as before (README, "Idempotency keys").

Each failure is logged as one warning naming the exception's type, the tool and the
tool_call_id, with the traceback; with payloads encrypted the worker's `ErrorTypesOnly` filter
(`durable_agent/telemetry.py`) drops the traceback and text, which are conversation content.
The SDK's own "Completing activity as failed" line says the same again and is at DEBUG for
these failures (`ApplicationErrorCategory.BENIGN`): the model hears of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import pydantic
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from durable_agent._causes import cause_message
from durable_agent.wire import StatusEvent, ToolOutcome


class Retried(Protocol):
    """What the count needs of a tool (a `Tool`, an MCP server's tool): its name as the model
    calls it, its own retry policy and its per-attempt timeout."""

    @property
    def name(self) -> str: ...

    @property
    def retry(self) -> RetryPolicy: ...

    @property
    def timeout(self) -> timedelta: ...


class OwnFailures(pydantic.BaseModel):
    """A tool activity's heartbeat details: how many of the tool's own attempts have failed.
    Worker-local (no workflow reads it), versioned by adding optional fields."""

    failures: int = 0


def prior_failures(info: activity.Info) -> int:
    """The tool's own failures before this attempt. A local activity has no heartbeats, and
    its attempts are all the tool's own: a dead worker's local activity starts again at 1."""
    if info.is_local:
        return info.attempt - 1
    for detail in info.heartbeat_details[:1]:
        try:
            return OwnFailures.model_validate(detail).failures
        except pydantic.ValidationError:
            break  # details of another version: count from here
    return 0


def out_of_time(
    tool: Retried, tool_call_id: str, info: activity.Info, events: list[StatusEvent]
) -> ToolOutcome | None:
    """The call's error result when this attempt starts past the time the tool's own
    attempts could have taken; None while there is time (or attempts are unlimited)."""
    limit = tool.retry.maximum_attempts
    if info.is_local or limit <= 0 or info.attempt == 1:
        return None
    elapsed = datetime.now(UTC) - info.scheduled_time
    if elapsed <= tool.timeout * limit:
        return None
    lost = info.attempt - 1 - prior_failures(info)
    activity.logger.warning(
        "tool %s (tool_call_id %s): not retried after %d attempts without a result in %s",
        tool.name,
        tool_call_id,
        lost,
        _seconds(elapsed),
    )
    return ToolOutcome(
        content=(
            f"tool {tool.name} did not finish: {lost} attempts ended without a result (their"
            f" worker stopped, or they passed the {_seconds(tool.timeout)} timeout) within"
            f" {_seconds(elapsed)}; it may have run in part"
        ),
        is_error=True,
        events=events,
    )


def tool_failed(
    tool: Retried, tool_call_id: str, exc: Exception, failures: int, events: list[StatusEvent]
) -> ToolOutcome:
    """The tool raised `exc`, its own failure number `failures`: the call's error result when
    its attempts are spent or the error is not retryable; otherwise raises for a retry, after
    recording the count for the next attempt."""
    retry = tool.retry
    error_type = recorded_type(exc)
    final = is_final(retry, exc, failures)
    attempts = f"attempt {failures} of {retry.maximum_attempts or 'unlimited'}"
    line = f"{error_type} from tool {tool.name} (tool_call_id {tool_call_id}), {attempts}"
    if final:
        activity.logger.warning("%s: the model is told", line, exc_info=exc)
        text = f"tool {tool.name} failed: {cause_message(exc)}"
        return ToolOutcome(content=text, is_error=True, events=events)
    activity.heartbeat(OwnFailures(failures=failures))  # sent with the failure, even throttled
    activity.logger.warning("%s: retrying", line, exc_info=exc)
    raise ApplicationError(
        line,
        type=error_type,
        next_retry_delay=retry_delay(tool.retry, exc, failures),
        category=ApplicationErrorCategory.BENIGN,
    ) from exc


def recorded_type(exc: Exception) -> str:
    """The error type Temporal would record for `exc`, which `non_retryable_error_types`
    names."""
    if isinstance(exc, ApplicationError) and exc.type:
        return exc.type
    return type(exc).__name__


def is_final(retry: RetryPolicy, exc: Exception, failures: int) -> bool:
    """Whether `retry` gives up after the `failures`-th failure, `exc`, as Temporal would."""
    return (
        (isinstance(exc, ApplicationError) and exc.non_retryable)
        or recorded_type(exc) in (retry.non_retryable_error_types or ())
        or 0 < retry.maximum_attempts <= failures
    )


def retry_delay(retry: RetryPolicy, exc: Exception, failures: int) -> timedelta:
    """`retry`'s interval after the `failures`-th failure (the error's own delay first): the
    server's attempt number also counts lost attempts, so its backoff would grow with every
    kill."""
    if isinstance(exc, ApplicationError) and exc.next_retry_delay is not None:
        return exc.next_retry_delay
    delay = retry.initial_interval * retry.backoff_coefficient ** (failures - 1)
    return min(delay, retry.maximum_interval or retry.initial_interval * 100)


def _seconds(elapsed: timedelta) -> str:
    return f"{elapsed.total_seconds():.0f} s"
