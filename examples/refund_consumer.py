"""Process queued refunds and signal each result into its waiting run.

Run it whenever: the runs wait durably, with or without a worker. It uses the `tool_result`
signal, which the server accepts even while no worker is running.
"""

from __future__ import annotations

import asyncio

from durable_agent import ToolResultSignal
from durable_agent.client import AgentClient

from .refund_queue import RefundJob, mark_done, take_all


def decide(job: RefundJob) -> dict[str, object]:
    """The back office's decision, deterministic for the demo."""
    approved = job.amount <= 500
    return {
        "order_id": job.order_id,
        "status": "approved" if approved else "needs_manager",
        "amount": job.amount,
        "reference": f"RF-{job.order_id}",
    }


async def process_all(client: AgentClient) -> list[RefundJob]:
    jobs = take_all()
    for job in jobs:
        result = ToolResultSignal(tool_call_id=job.tool_call_id, content=decide(job))
        await client.handle(job.workflow_id).signal("tool_result", result)
        mark_done(job)
    return jobs


async def main() -> None:
    client = await AgentClient.connect()
    for job in await process_all(client):
        print(f"signalled refund {job.order_id} -> {job.workflow_id} / {job.tool_call_id}")


if __name__ == "__main__":
    asyncio.run(main())
