"""Record the histories the replay test replays: `python -m tests.record_histories`.

Runs every feature of the loop (parallel tools, approval, long-running and external calls,
a bad argument, a handoff to an agent and to a person) on a dev server and saves the history.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from durable_agent.client import AgentClient
from durable_agent.devserver import start_embedded
from durable_agent.worker import create_worker

from .processes import eventually
from .replay_agents import TASK_QUEUE, agents

HISTORIES = Path(__file__).parent / "histories"


async def record(name: str) -> Path:
    env = await start_embedded(ui=False)
    try:
        client = AgentClient(env.client, TASK_QUEUE)
        async with create_worker(env.client, agents, task_queue=TASK_QUEUE):
            handle = await client.start("triage", "help me", workflow_id=f"replay-{name}")

            async def waiting_for(n: int) -> bool:
                return len(await client.pending(handle.id)) == n

            await eventually(lambda: waiting_for(3))
            await handle.signal("tool_result", {"tool_call_id": "nope", "content": "x"})
            await client.resolve(handle.id, "c4", "yes, refund")
            await client.decide(handle.id, "c2", approved=False, reason="not today")
            await client.resolve(handle.id, "c3", {"rows": 42})
            await eventually(lambda: waiting_for(1))
            await client.say(handle.id, "Billing here: refund issued.", name="billing")
            await handle.result()
        history = await handle.fetch_history()
    finally:
        await env.shutdown()
    HISTORIES.mkdir(exist_ok=True)
    path = HISTORIES / f"{name}.json"
    path.write_text(history.to_json())
    return path


if __name__ == "__main__":
    # Keep the old files: each one is a run recorded by an older version that must still replay.
    print(asyncio.run(record(sys.argv[1] if len(sys.argv) > 1 else "everything")))
