"""(d) Signal storms: many clients at once send duplicate, unknown, early and malformed
results, approvals and user messages, by signal and by update, to desk runs (an external, a
long-running and an approval call waiting together) and to conversation runs. Legitimate
senders repeat until the run takes their result or says it has one: the run must keep exactly
one result per call and every user message it accepted exactly once. The same workload with
one clean sender per call is the baseline."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from durable_agent import (
    ApprovalSignal,
    RunState,
    ToolResultSignal,
    UserMessageSignal,
)
from durable_agent.client import AgentClient

from .cluster import Workers, conversation, settle
from .tally import Figures, Run

MALFORMED: list[Any] = [
    "garbage",
    42,
    None,
    [],
    {},
    {"tool_call_id": 7, "content": "x"},
    {"content": "no id"},
    {"tool_call_id": "x1", "content": "x", "is_error": "maybe"},
]
MALFORMED_MESSAGES: list[Any] = [{"content": 5}, {}, "", {"content": None}, [1, 2]]
DONE = ("already has a result", "already decided")


class Storm:
    def __init__(self, clients: list[Client], queue: str, noisy: bool, seed: int) -> None:
        self.agents = [AgentClient(c, queue) for c in clients]
        self.noisy = noisy
        self.rng = random.Random(seed)
        self.sent = {"signals": 0, "updates": 0, "refused": 0, "aborted": 0, "over_limit": 0}

    def pick(self) -> AgentClient:
        return self.rng.choice(self.agents) if self.noisy else self.agents[0]

    async def signal(self, wf: str, name: str, *args: Any) -> bool:
        try:
            await self.pick().handle(wf).signal(name, args=list(args))
        except RPCError:
            return False  # the run has ended
        self.sent["signals"] += 1
        return True

    async def update(self, wf: str, name: str, payload: Any) -> str:
        """ "accepted", or why the run refused it."""
        self.sent["updates"] += 1
        try:
            await self.pick().handle(wf).execute_update(name, payload)
        except WorkflowUpdateFailedError as exc:
            self.sent["refused"] += 1
            return str(exc.cause)
        except RPCError as exc:
            self.sent["aborted"] += 1  # e.g. "workflow update was aborted", after the retries
            if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED:
                self.sent["over_limit"] += 1  # over the server's 10 updates in flight per run
            return f"rpc: {exc}"
        return "accepted"

    async def until_taken(self, wf: str, name: str, payloads: list[Any]) -> None:
        """Send the payloads at once (half by signal, half by update) until an update is
        accepted or the run says the call is settled."""
        for _ in range(300):
            batch = payloads if self.noisy else payloads[:1]
            answers = await asyncio.gather(
                *(
                    self.update(wf, f"submit_{name}", p)
                    if i % 2 == 0 or not self.noisy
                    else self.signal(wf, name, p)
                    for i, p in enumerate(batch)
                )
            )
            said = [a for a in answers if isinstance(a, str)]
            if any(a == "accepted" or any(d in a for d in DONE) for a in said):
                return
            if any(a.startswith("rpc") for a in said) and not await self.running(wf):
                return
            await asyncio.sleep(0.1)

    async def running(self, wf: str) -> bool:
        description = await self.agents[0].handle(wf).describe()
        return description.status == WorkflowExecutionStatus.RUNNING

    async def say(self, run: Run, count: int) -> None:
        async def one(k: int) -> None:
            text = f"message {k} to {run.workflow_id}"
            payload = UserMessageSignal(content=text)
            if k % 2 and self.noisy:
                ok = await self.signal(run.workflow_id, "user_message", payload)
            else:
                said = await self.update(run.workflow_id, "submit_user_message", payload)
                ok = said == "accepted"
                if said.startswith("rpc"):
                    run.unsure.append(text)
            if ok:
                run.sent.append(text)

        await asyncio.gather(*map(one, range(count)))

    async def noise(self, wf: str) -> None:
        if not self.noisy:
            return
        ghost = f"ghost-{uuid.uuid4().hex[:6]}"
        sends = [
            self.update(wf, "submit_tool_result", ToolResultSignal(tool_call_id=ghost, content=1)),
            self.signal(wf, "tool_result", ToolResultSignal(tool_call_id=ghost, content=2)),
            self.update(wf, "submit_approval", ApprovalSignal(tool_call_id="x1", approved=True)),
            self.signal(wf, "approval", ApprovalSignal(tool_call_id=ghost, approved=False)),
            self.update(wf, "submit_tool_result", ToolResultSignal(tool_call_id="a1", content=3)),
            self.signal(wf, "tool_result", "x1", "two inputs"),
            self.signal(wf, "approval"),
        ]
        for bad in MALFORMED:
            sends += [self.signal(wf, "tool_result", bad), self.signal(wf, "approval", bad)]
            sends.append(self.update(wf, "submit_tool_result", bad))
        for bad in MALFORMED_MESSAGES:
            sends += [
                self.signal(wf, "user_message", bad),
                self.update(wf, "submit_user_message", bad),
            ]
        await asyncio.gather(*sends)

    async def desk(self, run: Run) -> None:
        wf = run.workflow_id
        results = [
            ToolResultSignal(tool_call_id=call, content=f"{call} answer {k}")
            for call in ("x1", "j1")
            for k in range(6)
        ]
        approvals = [
            ApprovalSignal(tool_call_id="a1", approved=k != 3, reason=f"decider {k}")
            for k in range(6)
        ]
        await asyncio.gather(
            self.until_taken(wf, "tool_result", results[:6]),  # early: before the call exists
            self.until_taken(wf, "tool_result", results[6:]),  # early: while the job starts
            self.until_taken(wf, "approval", approvals),
            self.say(run, 8),
            self.noise(wf),
            self.noise(wf),
        )

    async def chat(self, run: Run) -> None:
        await asyncio.gather(self.say(run, 12), self.noise(run.workflow_id))


async def _idle_conversation(agents: AgentClient, run: Run, seconds: float) -> None:
    """Wait until the conversation holds every accepted message and waits for the next; read
    it; end it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = await agents.status(run.workflow_id)
        if status.state == RunState.WAITING_FOR_USER:
            run.messages = await conversation(agents.client, run.workflow_id)
            contents = {getattr(m, "content", None) for m in run.messages}
            if all(text in contents for text in run.sent):
                run.outcome = "completed"
                break
        await asyncio.sleep(0.3)
    run.ended = time.monotonic()
    await agents.handle(run.workflow_id).terminate("fault storm over")


async def _workload(
    clients: list[Client], queue: str, noisy: bool, desks: int, chats: int, seed: int
) -> tuple[list[Run], list[Run], Storm]:
    storm = Storm(clients, queue, noisy, seed)
    agents = storm.agents[0]
    desk_runs = [Run(f"desk-{uuid.uuid4().hex[:10]}", 0.0, sent=["file it"]) for _ in range(desks)]
    chat_runs = [Run(f"chat-{uuid.uuid4().hex[:10]}", 0.0, sent=["hello"]) for _ in range(chats)]

    async def desk(run: Run) -> None:
        run.started = time.monotonic()
        await agents.start("desk", "file it", workflow_id=run.workflow_id)
        await storm.desk(run)
        await settle(agents.client, run, 120)

    async def chat(run: Run) -> None:
        run.started = time.monotonic()
        await agents.start("chatter", "hello", workflow_id=run.workflow_id, conversation=True)
        await storm.chat(run)
        await _idle_conversation(agents, run, 60)

    await asyncio.gather(*map(desk, desk_runs), *map(chat, chat_runs))
    return desk_runs, chat_runs, storm


async def storm(
    clients: list[Client], queue: str, workers: Workers, desks: int, chats: int, seed: int
) -> Figures:
    figures = Figures("d. signal and update storms")
    began = time.monotonic()
    base_desks, base_chats, _ = await _workload(clients, queue, False, desks, chats, seed)
    desk_runs, chat_runs, noisy = await _workload(clients, queue, True, desks, chats, seed)
    figures.seconds = time.monotonic() - began
    runs = desk_runs + chat_runs
    figures.count_runs(runs)
    figures.count_bodies(workers.log, {r.workflow_id for r in runs})
    figures.faults = {
        "signals sent": noisy.sent["signals"],
        "updates sent": noisy.sent["updates"],
        "updates refused": noisy.sent["refused"],
        "updates that failed at the RPC level (the client gave up retrying)": noisy.sent["aborted"],
        "of which refused for the limit of 10 updates in flight per run": noisy.sent["over_limit"],
    }
    for label, base, stormed in (
        ("desk run vs. one clean sender", base_desks, desk_runs),
        ("conversation vs. one clean sender", base_chats, chat_runs),
    ):
        normal = statistics.median(r.seconds for r in base if r.seconds is not None)
        figures.latency[label] = [r.seconds - normal for r in stormed if r.seconds is not None]
    for run in base_desks + base_chats:
        if run.outcome != "completed":
            figures.problems.append(f"baseline {run.workflow_id}: {run.outcome}")
    figures.notes.append(
        f"{desks} desk runs and {chats} conversations, {len(clients)} client connections"
    )
    return figures
