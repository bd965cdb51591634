"""A bench worker in its own process, so its memory and its death can be measured:
`python -m bench.serve VARIANT --address HOST:PORT --queue Q [--sticky-seconds S]`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from durable_agent.worker import connect, create_worker

from . import bare, durable

VARIANTS = ["bare", "bare-unsandboxed", "anchor", "durable", "durable-fast"]


async def serve(variant: str, address: str, queue: str, sticky: float | None) -> None:
    options: dict[str, Any] = {}
    if sticky is not None:
        options["sticky_queue_schedule_to_start_timeout"] = timedelta(seconds=sticky)
    worker: Worker
    if variant == "anchor":
        from . import anchor

        worker = Worker(
            await anchor.connect(address),
            task_queue=queue,
            workflows=[anchor.AnchorLoop],
            activities=[anchor.fetch],
            **options,
        )
    elif variant in ("bare", "bare-unsandboxed"):
        if variant == "bare-unsandboxed":
            options["workflow_runner"] = UnsandboxedWorkflowRunner()
        worker = Worker(
            await Client.connect(address),
            task_queue=queue,
            workflows=[bare.BareLoop],
            activities=[bare.bare_model, bare.bare_tool],
            **options,
        )
    else:
        agents = {
            "durable": [durable.agent(False), durable.resume_agent(), *durable.crash_agents()],
            "durable-fast": [durable.agent(True)],
        }[variant]
        providers = {"slow": durable.SlowProvider()}
        worker = create_worker(
            await connect(address), agents, task_queue=queue, providers=providers, **options
        )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        print("ready", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--address", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--sticky-seconds", type=float)
    args = parser.parse_args()
    asyncio.run(serve(args.variant, args.address, args.queue, args.sticky_seconds))
    os._exit(0)  # skip interpreter finalization (temporalio/sdk-python#300)


if __name__ == "__main__":
    main()
