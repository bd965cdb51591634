"""Agents the storms' worker processes serve (`--agents faults.agents:agents`).

Tools append to the shared log (`journal`) so the storms can count how often each body ran.
`work` is a plain tool: a retry after a crash runs its body again. `keyed_work` follows the
idempotency-key pattern the README documents: its side effect is keyed by the run's workflow
id and the call's `tool_call_id`, and an attempt that finds the key done skips the work.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    ScriptedModel,
    ToolCall,
    ToolContext,
    external_tool,
    long_running_tool,
    tool,
)

from . import journal, trace

trace.install_if_asked()  # worker processes load this module before they connect

PROVIDER_MODEL_TIMEOUT = timedelta(seconds=6)
"""The provider storm's model timeout. The default (2 minutes) is what a hung provider costs a
call; a storm that hangs several calls would take many minutes at it, so the storm's agent
shortens it (docs/reliability.md says so)."""


@tool
def work(seconds: float, ctx: ToolContext) -> str:
    """Work for a while, with no idempotency key: a retry runs it again.

    Args:
        seconds: How long it takes.
    """
    journal.write("work_started", ctx.workflow_id, ctx.tool_call_id, attempt=ctx.attempt)
    time.sleep(seconds)
    journal.write("work_done", ctx.workflow_id, ctx.tool_call_id, attempt=ctx.attempt)
    return f"worked {seconds} s"


@tool
async def keyed_work(seconds: float, ctx: ToolContext) -> str:
    """Work for a while, keyed by the call: work done before is not done again.

    Args:
        seconds: How long it takes.
    """
    key = f"{ctx.workflow_id}/{ctx.tool_call_id}"
    done = journal.applied(key)
    if done is not None:
        journal.write("keyed_skipped", ctx.workflow_id, ctx.tool_call_id, attempt=ctx.attempt)
        return done
    journal.write("keyed_started", ctx.workflow_id, ctx.tool_call_id, attempt=ctx.attempt)
    await asyncio.sleep(seconds)
    result = f"worked {seconds} s"
    if journal.apply_once(key, result):
        journal.write("keyed_effect", ctx.workflow_id, ctx.tool_call_id, attempt=ctx.attempt)
    journal.write("keyed_done", ctx.workflow_id, ctx.tool_call_id, attempt=ctx.attempt)
    return journal.applied(key) or result


def _call(call_id: str, tool_name: str, **arguments: object) -> ToolCall:
    return ToolCall(id=call_id, name=tool_name, arguments=json.dumps(arguments))


# (a) Kills: turns of parallel calls of mixed durations (0.1-5 s), half of them keyed.
CREW_TURNS: list[list[tuple[str, float]]] = [
    [("work", 0.1), ("keyed_work", 2.5), ("work", 5.0)],
    [("keyed_work", 0.5), ("work", 1.0), ("keyed_work", 4.0)],
    [("work", 0.3), ("keyed_work", 3.0)],
]
CREW_NOMINAL = sum(max(s for _, s in turn) for turn in CREW_TURNS)
"""Seconds a crew run spends in its tools when nothing goes wrong."""

crew = Agent(
    "crew",
    model=ScriptedModel(
        "crew",
        [
            *(
                AssistantMessage(
                    tool_calls=[
                        _call(f"t{turn}-{i}", name, seconds=seconds)
                        for i, (name, seconds) in enumerate(calls)
                    ]
                )
                for turn, calls in enumerate(CREW_TURNS)
            ),
            "crew done",
        ],
    ),
    tools=[work, keyed_work],
)


@external_tool(deadline=timedelta(minutes=10))
def ask_outside(question: str) -> str:
    """Ask someone outside; the answer is signalled in.

    Args:
        question: The question.
    """
    raise NotImplementedError


@long_running_tool(deadline=timedelta(minutes=10))
def file_job(name: str, ctx: ToolContext) -> str:
    """Start a job whose result arrives later by signal; starting it takes a second.

    Args:
        name: The job.
    """
    journal.write("job_started", ctx.workflow_id, ctx.tool_call_id, attempt=ctx.attempt)
    time.sleep(1.0)
    key = f"{ctx.workflow_id}/{ctx.tool_call_id}"
    if journal.apply_once(key, "queued"):
        journal.write("job_effect", ctx.workflow_id, ctx.tool_call_id, attempt=ctx.attempt)
    return "queued"


@tool(requires_approval=True, deadline=timedelta(minutes=10))
def pay_out(amount: int, ctx: ToolContext) -> str:
    """Pay out money (a person approves first), keyed by the call.

    Args:
        amount: Dollars.
    """
    journal.write("pay_started", ctx.workflow_id, ctx.tool_call_id, attempt=ctx.attempt)
    key = f"{ctx.workflow_id}/{ctx.tool_call_id}"
    if journal.apply_once(key, f"paid {amount}"):
        journal.write("pay_effect", ctx.workflow_id, ctx.tool_call_id, attempt=ctx.attempt)
    return journal.applied(key) or f"paid {amount}"


def _then_answer(name: str, first: AssistantMessage, answer: str) -> ScriptedModel:
    """`first`, then `answer` to anything later: messages that arrive while the run waits get
    a reply of their own, however many turns they take."""

    def reply(request: ModelRequest) -> AssistantMessage | str:
        asked = any(m.role == "assistant" for m in request.messages)
        return answer if asked else first

    return ScriptedModel(name, reply)


# (b) Server restarts: a run waiting on two tools and a signal at once.
sentinel = Agent(
    "sentinel",
    model=_then_answer(
        "sentinel",
        AssistantMessage(
            tool_calls=[
                _call("k1", "keyed_work", seconds=3.0),
                _call("w1", "work", seconds=2.0),
                _call("x1", "ask_outside", question="still there?"),
            ]
        ),
        "sentinel done",
    ),
    tools=[work, keyed_work, ask_outside],
)

# (d) Signal storms: external, long-running and approval calls waiting together.
desk = Agent(
    "desk",
    model=_then_answer(
        "desk",
        AssistantMessage(
            tool_calls=[
                _call("x1", "ask_outside", question="which account?"),
                _call("j1", "file_job", name="report"),
                _call("a1", "pay_out", amount=40),
            ]
        ),
        "desk done",
    ),
    tools=[ask_outside, file_job, pay_out],
)


def _echo(request: ModelRequest) -> str:
    last = request.messages[-1]
    return f"noted: {last.content if last.role == 'user' else ''}"


chatter = Agent("chatter", model=ScriptedModel("chatter", _echo))

# (c) A misbehaving provider: the real OpenAI SDK (Chat Completions) against OPENAI_BASE_URL.
oracle = Agent(
    "oracle",
    model="openai-chat:storm-model",
    tools=[keyed_work],
    model_timeout=PROVIDER_MODEL_TIMEOUT,
)

agents = [crew, sentinel, desk, chatter, oracle]
