"""The heartbeater in isolation: quick calls send no heartbeat, slow ones do, and which timeout
each call runs with. Crash recovery on a real server is in `test_crash_recovery.py`."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from temporalio import activity
from temporalio.testing import ActivityEnvironment

from bench.durable import agent as bench_agent
from durable_agent import Agent, ScriptedModel, tool
from durable_agent.activities.heartbeat import beat_interval, heartbeating
from durable_agent.activities.tools import tool_activity
from durable_agent.activities.transcripts import TranscriptCache
from durable_agent.authoring._hooks import hook
from durable_agent.authoring._tool import HEARTBEAT_TIMEOUT
from durable_agent.wire import ToolInvocation


def environment(
    timeout: timedelta | None, *, local: bool = False
) -> tuple[ActivityEnvironment, list[tuple[object, ...]]]:
    """An activity environment scheduled as the workflow schedules calls; it records beats."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timeout, is_local=local)
    beats: list[tuple[object, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    return env, beats


@activity.defn
async def busy(seconds: float) -> str:
    async with heartbeating():
        await asyncio.sleep(seconds)
    return "done"


async def test_the_instant_bench_tool_sends_no_heartbeat() -> None:
    [fetch] = bench_agent(fast=False).tool_list
    env, beats = environment(HEARTBEAT_TIMEOUT)
    invocation = ToolInvocation(
        tool_call_id="c0", name=fetch.name, arguments='{"size": 8}', agent="bench"
    )
    outcome = await env.run(tool_activity(fetch, TranscriptCache()), invocation)
    assert not outcome.is_error
    # Past the first interval: the heartbeat task ended with the call, it never beats late.
    await asyncio.sleep(beat_interval(HEARTBEAT_TIMEOUT) + 0.2)
    assert beats == []


async def test_a_call_shorter_than_the_interval_makes_no_heartbeat_call() -> None:
    timeout = timedelta(seconds=1)  # beats every 0.2 s
    env, beats = environment(timeout)
    assert await env.run(busy, 0.1) == "done"
    await asyncio.sleep(beat_interval(timeout) * 2)
    assert beats == []


async def test_a_slow_call_beats_every_fifth_of_the_timeout() -> None:
    """The call lasts until it has beaten three times (bounded), so a busy machine, whose
    sleeps overshoot, cannot fail it; the beats come no faster than the interval, a bound
    that load only widens."""
    timeout = timedelta(seconds=0.5)  # beats every 0.1 s
    env, beats = environment(timeout)

    @activity.defn
    async def beaten(times: int) -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with heartbeating():
            for _ in range(6000):  # bounded: about 60 s
                if len(beats) >= times:
                    break
                await asyncio.sleep(0.01)
        return loop.time() - began

    took = await env.run(beaten, 3)
    assert len(beats) >= 3
    assert took >= 3 * beat_interval(timeout)


async def test_no_heartbeat_without_a_timeout_or_in_a_local_activity() -> None:
    for env, beats in (environment(None), environment(timedelta(seconds=0.5), local=True)):
        assert await env.run(busy, 0.3) == "done"
        assert beats == []


def test_each_call_runs_with_its_own_timeout_else_its_agents() -> None:
    @tool
    def plain() -> str:
        """Inherits."""
        return ""

    @tool(heartbeat_timeout=timedelta(seconds=30))
    def patient() -> str:
        """Its own."""
        return ""

    @tool(heartbeat_timeout=None)
    def silent() -> str:
        """None."""
        return ""

    quiet = hook(lambda _: None, name="quiet", heartbeat_timeout=None)
    default = Agent("a", model=ScriptedModel("a", ["hi"]))
    assert default.heartbeat_timeout == HEARTBEAT_TIMEOUT == timedelta(seconds=4)
    assert [default.heartbeat_for(t) for t in (plain, patient, silent, quiet)] == [
        HEARTBEAT_TIMEOUT,
        timedelta(seconds=30),
        None,
        None,
    ]
    relaxed = Agent("b", model=ScriptedModel("b", ["hi"]), heartbeat_timeout=timedelta(minutes=1))
    assert relaxed.heartbeat_for(plain) == timedelta(minutes=1)
    assert relaxed.heartbeat_for(patient) == timedelta(seconds=30)
