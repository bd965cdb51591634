"""Agents served by worker *processes* in the end-to-end tests (`--agents tests.e2e_agents:agents`).

Side effects are appended to the file named by E2E_LOG so the test process can count them.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from temporalio.common import RetryPolicy

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    ScriptedModel,
    ToolCall,
    ToolContext,
    UserMessage,
    external_tool,
    long_running_tool,
    tool,
)


def _log(kind: str, ctx: ToolContext) -> None:
    path = Path(os.environ["E2E_LOG"])
    with path.open("a") as f:
        f.write(json.dumps({"kind": kind, "id": ctx.tool_call_id, "wf": ctx.workflow_id}) + "\n")


@tool
def slow_step(step: int, ctx: ToolContext) -> str:
    """A step that takes a while.

    Args:
        step: Which step.
    """
    _log("slow_step_started", ctx)
    time.sleep(1.5)
    _log("slow_step_done", ctx)
    return f"step {step} done"


@long_running_tool()
def start_job(name: str, ctx: ToolContext) -> str:
    """Start a long job; its result arrives later by signal.

    Args:
        name: The job.
    """
    _log("job_started", ctx)
    return "started"


def _calls(turn: int, name: str, args: dict[str, object]) -> AssistantMessage:
    return AssistantMessage(
        tool_calls=[ToolCall(id=f"{name}-{turn}", name=name, arguments=json.dumps(args))]
    )


stepper = Agent(
    "stepper",
    model=ScriptedModel(
        "stepper",
        [
            _calls(0, "slow_step", {"step": 1}),
            _calls(1, "slow_step", {"step": 2}),
            "all steps done",
        ],
    ),
    tools=[slow_step],
)

jobber = Agent(
    "jobber",
    model=ScriptedModel("jobber", [_calls(0, "start_job", {"name": "report"}), "the job finished"]),
    tools=[start_job],
)


@tool(requires_approval=True)
def wire_money(amount: int) -> str:
    """Wire money (a person approves first).

    Args:
        amount: Dollars.
    """
    return f"wired {amount}"


@external_tool()
def ask_human(question: str) -> str:
    """Ask a human.

    Args:
        question: The question.
    """
    raise NotImplementedError


clerk = Agent(
    "clerk",
    model=ScriptedModel(
        "clerk",
        [
            AssistantMessage(
                tool_calls=[
                    ToolCall(id="w1", name="wire_money", arguments='{"amount": 5}'),
                    ToolCall(id="q1", name="ask_human", arguments='{"question": "ok?"}'),
                ]
            ),
            "all handled",
        ],
    ),
    tools=[wire_money, ask_human],
)


@tool
def long_step(ctx: ToolContext) -> str:
    """A step that takes six seconds, with every setting at its default."""
    _log("long_step_started", ctx)
    time.sleep(6)
    _log("long_step_done", ctx)
    return "long step done"


plodder = Agent(
    "plodder",
    model=ScriptedModel("plodder", [_calls(0, "long_step", {}), "the long step is done"]),
    tools=[long_step],
)

# The real OpenAI provider, against the OPENAI_BASE_URL the test gives the worker.
thinker = Agent("thinker", model="openai:fake-model")


@tool
async def wait_async(ctx: ToolContext) -> str:
    """Waits a minute, unless cancelled."""
    _log("wait_async_started", ctx)
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        _log("wait_async_cancelled", ctx)
        raise
    return "waited"


@tool
def wait_sync(ctx: ToolContext) -> str:
    """Waits three seconds in its thread; cancellation cannot interrupt it."""
    _log("wait_sync_started", ctx)
    time.sleep(3)
    _log("wait_sync_done", ctx)
    return "waited"


waiter = Agent(
    "waiter",
    model=ScriptedModel(
        "waiter",
        [
            AssistantMessage(
                tool_calls=[
                    ToolCall(id="a1", name="wait_async", arguments="{}"),
                    ToolCall(id="s1", name="wait_sync", arguments="{}"),
                ]
            ),
            "both waited",
        ],
    ),
    tools=[wait_async, wait_sync],
)

agents = [stepper, jobber, clerk, plodder, thinker, waiter]


# Rolling restarts (tests/test_rolling_restart.py): async tools, so a worker that stops can
# cancel them once its grace period is over. Their log lines say which worker ran them, when.
def _log_shift(kind: str, ctx: ToolContext) -> None:
    line = {"kind": kind, "id": ctx.tool_call_id, "wf": ctx.workflow_id, "pid": os.getpid()}
    with Path(os.environ["E2E_LOG"]).open("a") as f:
        f.write(json.dumps({**line, "t": time.time()}) + "\n")


@tool
async def shift(seconds: float, ctx: ToolContext) -> str:
    """A shift of work.

    Args:
        seconds: How long it takes.
    """
    _log_shift("shift_started", ctx)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _log_shift("shift_cancelled", ctx)
        raise
    _log_shift("shift_done", ctx)
    return f"worked {seconds} s"


def _shifts(turns: int) -> list[AssistantMessage | str]:
    """Each turn two shifts at once, of 1 s and 2 s."""
    replies: list[AssistantMessage | str] = [
        AssistantMessage(
            tool_calls=[
                ToolCall(id=f"shift-{turn}-{i}", name="shift", arguments=json.dumps({"seconds": s}))
                for i, s in enumerate((1.0, 2.0))
            ]
        )
        for turn in range(turns)
    ]
    return [*replies, "all shifts worked"]


SHIFTER_TURNS = 9
shifter = Agent("shifter", model=ScriptedModel("shifter", _shifts(SHIFTER_TURNS)), tools=[shift])


@tool
async def overtime(ctx: ToolContext) -> str:
    """Works a minute on its first attempt, a moment on any later one."""
    _log_shift("overtime_started", ctx)
    try:
        await asyncio.sleep(60 if ctx.attempt == 1 else 0.5)
    except asyncio.CancelledError:
        _log_shift("overtime_cancelled", ctx)
        raise
    _log_shift("overtime_done", ctx)
    return "overtime worked"


overworker = Agent(
    "overworker",
    model=ScriptedModel("overworker", [_calls(0, "overtime", {}), "overtime is over"]),
    tools=[overtime],
)

# Worker Versioning (tests/test_worker_versioning.py): a run that waits for a person.
asker = Agent(
    "asker",
    model=ScriptedModel("asker", [_calls(0, "ask_human", {"question": "ship it?"}), "shipped"]),
    tools=[ask_human],
)

agents += [shifter, overworker, asker]


@tool(requires_approval=True)
def pay(amount: int, ctx: ToolContext) -> str:
    """Pay out (a person approves first); takes a second.

    Args:
        amount: Dollars.
    """
    _log("pay_started", ctx)
    time.sleep(1)
    _log("pay_done", ctx)
    return f"paid {amount}"


payer = Agent(
    "payer",
    model=ScriptedModel(
        "payer",
        [
            AssistantMessage(tool_calls=[ToolCall(id="p1", name="pay", arguments='{"amount": 9}')]),
            "paid",
        ],
    ),
    tools=[pay],
)
agents += [payer]


# `durable-agent mcp-serve` (tests/test_mcp_serve.py): agents offered as MCP tools.
def _echo(request: ModelRequest) -> str:
    """Answers the conversation's last user message, however many turns it has had."""
    last = next(m for m in reversed(request.messages) if isinstance(m, UserMessage))
    return f"echo: {last.content}"


echo = Agent(
    "echo",
    instructions="Repeat the user's last message.\n\nA scripted model, for tests.",
    model=ScriptedModel("echo", _echo),
)
looper = Agent(
    "looper",
    instructions="Call a tool it does not have until max_turns fails the run.",
    model=ScriptedModel("looper", [_calls(0, "no_such_tool", {})]),
    max_turns=1,
)
mcp_agents = [echo, looper, payer]
agents += [echo, looper]


# Live runs through the CLI (tests/test_cli.py): replies that stream word by word.
STREAMED_REPLY = "Streaming " + " ".join(f"w{n}" for n in range(60)) + " done."
"""62 words at 0.05 s: three seconds of streaming."""
streamer = Agent("streamer", model=ScriptedModel("streamer", [STREAMED_REPLY], chunk_delay=0.05))

RAMBLE = " ".join(f"story{n}" for n in range(400))
"""Twenty seconds of streaming, unless an interrupt cuts it off."""


def _ramble(request: ModelRequest) -> str:
    last = next(m for m in reversed(request.messages) if isinstance(m, UserMessage))
    return "Bye." if last.content.startswith("Stop") else RAMBLE


rambler = Agent("rambler", model=ScriptedModel("rambler", _ramble, chunk_delay=0.05))
chatter = Agent("chatter", model=ScriptedModel("chatter", _echo, chunk_delay=0.02))
agents += [streamer, rambler, chatter]


# A tool fails only for its own reasons (tests/test_crash_recovery.py): two attempts of its own,
# three workers killed during it, then one failure of its own, then success.
@tool(retry=RetryPolicy(maximum_attempts=2))
def sturdy_step(ctx: ToolContext) -> str:
    """Takes three seconds; its fourth run fails at once, on its own."""
    log = Path(os.environ["E2E_LOG"])
    runs = log.read_text().count('"sturdy_started"') if log.exists() else 0
    _log("sturdy_started", ctx)
    if runs == 3:
        raise ConnectionError("the fourth run fails on its own")
    time.sleep(3)
    return "sturdy step done"


sturdy = Agent(
    "sturdy",
    model=ScriptedModel("sturdy", [_calls(0, "sturdy_step", {}), "the sturdy step is done"]),
    tools=[sturdy_step],
)
agents += [sturdy]
