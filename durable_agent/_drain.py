"""A stopping worker stops asking for tasks before it cancels its polls.

Why: the SDK (temporalio 1.35) cancels a worker's outstanding long polls when it shuts down. A
task the server hands to one of those polls in that instant is recorded as started by the
stopping worker and never reaches it, so the run waits out the task's timeout (a workflow
task's 10 s). Measured on the dev server (server 1.32), 3 workers restarted one at a time
under 20 runs: in 3 of 5 rolling restarts one or two runs were held up 10 s that way, every
time by a workflow task that the stopping worker's sticky queue handed to it the moment SIGTERM
arrived. (The server's cure, `frontend.enableCancelWorkerPollsOnShutdown`, needs an SDK whose
polls wait for the server to end them; with 1.35 it changed nothing: 2 of 3 still stalled.)

So a worker's workflow and activity slots come from `PollGate`: open, it hands out slots as the
SDK's fixed-size supplier does (one per poll and per task); closed, it hands out none, so no
new poll starts. The polls already waiting are then answered by tasks (which the worker runs as
usual) or stay idle because nothing is sent to them. The task queue's own polls close first,
the sticky ones last, so the runs cached here are served until the end. Then the worker shuts
down with no poll left whose task could be lost: with it, 0 stalls in 8 rolling restarts. A
task sent to the sticky queue after its last poll still waits the sticky timeout (1 s) before
another worker takes it, because the SDK tells the server the worker is gone only once its
calls have drained.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass
from datetime import timedelta

from temporalio.worker import (
    CustomSlotSupplier,
    FixedSizeSlotSupplier,
    SlotMarkUsedContext,
    SlotPermit,
    SlotReleaseContext,
    SlotReserveContext,
    Worker,
    WorkerTuner,
)

DEFAULT_SLOTS = 100
"""The SDK's default number of slots of each kind (`WorkerTuner.create_fixed`)."""
POLL_DRAIN = timedelta(seconds=2)
"""The longest a stopping worker waits for its polls in flight of one kind to be answered."""
POLL_IDLE = timedelta(seconds=0.5)
"""It stops waiting sooner once no poll has brought a task for this long: nothing is being sent
to that queue, so cancelling its polls risks little, and the grace period of running calls
(which starts after this wait) is not held up on an idle worker."""
_RECHECK = 0.05
"""Seconds between checks of a full or closed gate (its release callbacks may come from the
SDK's own threads, so they only count and never wake the event loop)."""


@dataclass(frozen=True)
class Gates:
    workflows: PollGate
    activities: PollGate


_gates: weakref.WeakKeyDictionary[Worker, Gates] = weakref.WeakKeyDictionary()


@dataclass
class _Permit(SlotPermit):
    sticky: bool
    polling: bool
    """True from the poll's start until it brings a task or is released unused."""


class PollGate(CustomSlotSupplier):
    """A fixed number of slots; once closed for sticky or other polls, none for those."""

    def __init__(self, slots: int = DEFAULT_SLOTS) -> None:
        self.slots = slots
        self._in_use = 0
        self._polling = {False: 0, True: 0}  # by stickiness: polls in flight
        self._closed = {False: False, True: False}
        self._answered = time.monotonic()  # when a poll last brought a task

    def polling(self, *, sticky: bool) -> int:
        """Polls in flight: slots reserved for a poll that has brought no task yet."""
        return self._polling[sticky]

    async def reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit:
        sticky = ctx.is_sticky
        while self._closed[sticky] or self._in_use >= self.slots:  # noqa: ASYNC110 (_RECHECK)
            await asyncio.sleep(_RECHECK)  # the SDK cancels this when it shuts down
        self._in_use += 1
        self._polling[sticky] += 1
        return _Permit(sticky=sticky, polling=True)

    def try_reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit | None:
        # Eager tasks (an activity started with the workflow task that scheduled it) are no poll.
        if any(self._closed.values()) or self._in_use >= self.slots:
            return None
        self._in_use += 1
        return _Permit(sticky=ctx.is_sticky, polling=False)

    def mark_slot_used(self, ctx: SlotMarkUsedContext) -> None:
        self._answered = time.monotonic()
        self._poll_ended(ctx.permit)

    def release_slot(self, ctx: SlotReleaseContext) -> None:
        self._poll_ended(ctx.permit)
        self._in_use -= 1

    def _poll_ended(self, permit: SlotPermit) -> None:
        if isinstance(permit, _Permit) and permit.polling:
            permit.polling = False
            self._polling[permit.sticky] -= 1

    async def close(self, within: timedelta, *, sticky: bool) -> None:
        """Start no new poll of that kind; return once none is in flight, after `within`, or
        once no poll has brought a task for `POLL_IDLE`."""
        self._closed[sticky] = True
        closed = now = time.monotonic()
        deadline, idle = now + within.total_seconds(), POLL_IDLE.total_seconds()
        while (
            self._polling[sticky] > 0
            and now < deadline
            and now - max(closed, self._answered) < idle
        ):
            await asyncio.sleep(_RECHECK)
            now = time.monotonic()


def gated_tuner() -> tuple[WorkerTuner, Gates]:
    """The SDK's default slot counts, with workflow and activity slots behind gates."""
    gates = Gates(workflows=PollGate(), activities=PollGate())
    tuner = WorkerTuner.create_composite(
        workflow_supplier=gates.workflows,
        activity_supplier=gates.activities,
        local_activity_supplier=FixedSizeSlotSupplier(DEFAULT_SLOTS),
        nexus_supplier=FixedSizeSlotSupplier(DEFAULT_SLOTS),
    )
    return tuner, gates


def remember(worker: Worker, gates: Gates) -> None:
    _gates[worker] = gates


async def stop_polling(worker: Worker, within: timedelta = POLL_DRAIN) -> None:
    """Close `worker`'s gates (if it has them) and wait for its polls in flight, in an order
    that keeps the runs cached here served until the end: first the task queue's own polls
    (workflow and activity), then the sticky ones, which the tasks of those runs answer."""
    gates = _gates.get(worker)
    if gates is None:
        return
    await asyncio.gather(
        gates.workflows.close(within, sticky=False), gates.activities.close(within, sticky=False)
    )
    await gates.workflows.close(within, sticky=True)
