"""The call book: the tool calls of one model response, each in one of a closed set of phases,
and the rules that signal handlers and the loop share about what may happen to them.

A call's route (how it is answered) is fixed by the tool the model named; its phase moves
forward only: NEW -> [AWAITING_APPROVAL] -> RUNNING | AWAITING_RESULT -> RESOLVED. A result or a
decision may arrive before the call waits for it (a long-running tool's result while its
starting activity still runs): it is kept on the call and applied when the call gets there.
Results that arrived before their call was even opened (carried by a snapshot) wait in `early`.
What a call awaits starts and stops through the book (`start_wait`, `end_wait`), which tells its
one watcher (the run's state follows what waits) in the same step, so the `AgentStatus` write
keeps its place among the run's commands. Plain Python, unit-tested without a server
(tests/test_call_book.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models and the agent definitions the worker registered.
    from durable_agent.authoring._agent import Agent, Handoff, SubAgent
    from durable_agent.authoring._mcp import MCPTool
    from durable_agent.authoring._tool import Tool, ToolKind
    from durable_agent.wire import (
        ApprovalSignal,
        PendingCall,
        PendingKind,
        ToolCall,
        ToolMessage,
        ToolResultSignal,
        arguments_digest,
    )


class Route(StrEnum):
    """How a call is answered."""

    INVOCABLE = "invocable"
    """A tool activity's return value."""
    LONG_RUNNING = "long_running"
    """A tool activity starts the work; a `tool_result` signal answers."""
    EXTERNAL = "external"
    """A `tool_result` signal answers; no activity runs."""
    PERSON = "person"
    """A handoff to a person: a `tool_result` or `user_message` signal answers."""
    MCP = "mcp"
    """A tool of an MCP server: its `mcp.<server>.<tool>` activity's result."""
    AGENT = "agent"
    """A handoff to another agent: answered at once, the next turn is that agent's."""
    SUB_AGENT = "sub_agent"
    """Another agent as a tool: a child run's final answer."""
    UNKNOWN = "unknown"
    """No such tool: answered at once with an error the model can act on."""

    @property
    def takes_result(self) -> bool:
        return self in (Route.LONG_RUNNING, Route.EXTERNAL, Route.PERSON)


class Phase(StrEnum):
    NEW = "new"
    """Opened; the loop has not taken a step for it yet."""
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    """Its activity runs, or the loop is between two of its steps."""
    AWAITING_RESULT = "awaiting_result"
    RESOLVED = "resolved"


Target = Tool | MCPTool | Handoff | SubAgent | None
"""What a call names: found once, when its response's calls are opened (None: no such tool)."""


@dataclass
class OpenCall:
    """One call of the response. `pending` is set exactly while the call awaits something."""

    call: ToolCall
    route: Route
    needs_approval: bool
    target: Target = field(default=None, compare=False)
    share: tuple[int, int] = (0, 1)
    """A sub-agent call's share of the budget left: (its index, how many started together)."""
    phase: Phase = Phase.NEW
    pending: PendingCall | None = None
    result: ToolResultSignal | None = None
    decision: ApprovalSignal | None = None
    answer: ToolMessage | None = None
    """Set once resolved (or when a snapshot carried the call's answer over)."""
    guardrails: list[str] = field(default_factory=list)
    """The tool guardrails its tool activity checks it with (set by `Guardrails.around`)."""

    def wait(self, pending: PendingCall) -> None:
        self.phase = (
            Phase.AWAITING_APPROVAL if pending.kind == "approval" else Phase.AWAITING_RESULT
        )
        self.pending = pending

    def proceed(self) -> None:
        self.phase, self.pending = Phase.RUNNING, None

    def resolve(self, answer: ToolMessage | None = None) -> None:
        self.phase, self.pending = Phase.RESOLVED, None
        self.answer = answer or self.answer

    @property
    def digest(self) -> str:
        return arguments_digest(self.call.name, self.call.arguments)

    def ready(self) -> bool:
        """What the call awaits has arrived."""
        if self.phase is Phase.AWAITING_APPROVAL:
            return self.decision is not None
        return self.result is not None


def find_target(
    agent: Agent, call: ToolCall, mcp_tools: Mapping[str, MCPTool] | None = None
) -> Target:
    """What `call` names under `agent`: its own tools first, then the MCP tools its run listed."""
    return agent.find_tool(call.name) or (mcp_tools or {}).get(call.name)


def route_of(
    agent: Agent, call: ToolCall, mcp_tools: Mapping[str, MCPTool] | None = None
) -> tuple[Route, bool]:
    """The route of `call` under `agent` (and the MCP tools its run listed), and whether it
    needs an approval first."""
    return _route(find_target(agent, call, mcp_tools), call)


def _route(target: Target, call: ToolCall) -> tuple[Route, bool]:
    if isinstance(target, Handoff):
        return (Route.AGENT if target.agent is not None else Route.PERSON), False
    if isinstance(target, SubAgent):
        return Route.SUB_AGENT, False
    if isinstance(target, Tool):
        route = {
            ToolKind.INVOCABLE: Route.INVOCABLE,
            ToolKind.LONG_RUNNING: Route.LONG_RUNNING,
            ToolKind.EXTERNAL: Route.EXTERNAL,
        }[target.kind]
        return route, target.needs_approval(call.arguments)
    if isinstance(target, MCPTool):
        return Route.MCP, target.needs_approval(call.arguments)
    return Route.UNKNOWN, False


class CallBook:
    """The open calls of the response being resolved, plus what a snapshot carried over."""

    def __init__(self) -> None:
        self._calls: dict[str, OpenCall] = {}
        self.early: dict[str, ToolResultSignal] = {}
        """Results signalled before their call was opened (carried over by a snapshot)."""
        self.resumed: dict[str, PendingKind] = {}
        """Calls that were waiting in the snapshot this run started from, by kind."""
        self.answered: dict[str, ToolMessage] = {}
        """Answers a snapshot carried for calls of its last response, by tool_call_id."""
        self._handoff: str | None = None
        self._watcher: Callable[[set[PendingKind]], None] | None = None

    def watch(self, watcher: Callable[[set[PendingKind]], None]) -> None:
        """`watcher` is told what the open calls wait for whenever a wait starts or ends."""
        self._watcher = watcher

    def open(
        self,
        agent: Agent,
        calls: Iterable[ToolCall],
        mcp_tools: Mapping[str, MCPTool] | None = None,
    ) -> list[OpenCall]:
        """Open the calls of a response; early results go to the calls that take them."""
        opened = []
        for call in calls:
            target = find_target(agent, call, mcp_tools)
            route, needs_approval = _route(target, call)
            if self.resumed.get(call.id) in ("long_running", "external"):
                needs_approval = False  # approved in the run the snapshot came from
            opened.append(OpenCall(call, route, needs_approval, target))
        self._calls = {c.call.id: c for c in opened}
        self._handoff = None
        for each in opened:
            carried = self.answered.pop(each.call.id, None)
            if carried is not None:
                each.resolve(carried)
        children = [c for c in opened if c.route is Route.SUB_AGENT and c.answer is None]
        for index, child in enumerate(children):
            child.share = (index, len(children))
        for call_id, early in list(self.early.items()):
            found = self._calls.get(call_id)
            if found is not None and found.route.takes_result:
                found.result = early
                del self.early[call_id]
        return opened

    def close(self) -> str | None:
        """Every call has its result: the response is done. The agent it handed off to."""
        self._calls = {}
        return self._handoff

    def claim_handoff(self, agent: str) -> bool:
        """One handoff to an agent per response: the first in call order wins."""
        if self._handoff is not None:
            return False
        self._handoff = agent
        return True

    def start_wait(self, call: OpenCall, pending: PendingCall) -> None:
        call.wait(pending)
        self._tell()

    def end_wait(self, call: OpenCall) -> None:
        call.proceed()
        self._tell()

    def _tell(self) -> None:
        if self._watcher is not None:
            self._watcher(self.waiting_kinds())

    def was_waiting(self, call_id: str) -> bool:
        """The call was already started before the snapshot: do not start it again."""
        return self.resumed.pop(call_id, None) in ("long_running", "external")

    # ------------------------------------------------------------------ rules for signals

    def check_result(self, sig: ToolResultSignal, answered: Callable[[str], bool]) -> str | None:
        """Why a `tool_result` cannot be taken, or None. `answered` says whether the
        conversation already holds a result for an id."""
        call = self._calls.get(sig.tool_call_id)
        if call is None:
            if answered(sig.tool_call_id):
                return f"tool call {sig.tool_call_id} already has a result"
            return f"unknown tool_call_id {sig.tool_call_id}: no such call is waiting"
        if not call.route.takes_result:
            return f"tool call {sig.tool_call_id} ({call.call.name}) does not take a result signal"
        if call.result is not None or call.phase is Phase.RESOLVED:
            return f"tool call {sig.tool_call_id} already has a result"
        if call.needs_approval and call.decision is None:
            return f"tool call {sig.tool_call_id} is waiting for approval, not for a result"
        if call.decision is not None and not call.decision.approved:
            return f"tool call {sig.tool_call_id} was rejected: it takes no result"
        return None

    def take_result(self, sig: ToolResultSignal) -> bool:
        """Keep a checked result on its call; True when it is buffered (the call does not wait
        yet)."""
        call = self._calls[sig.tool_call_id]
        call.result = sig
        return call.phase is not Phase.AWAITING_RESULT

    def check_approval(self, sig: ApprovalSignal) -> str | None:
        call = self._calls.get(sig.tool_call_id)
        if call is None or not call.needs_approval:
            return f"tool call {sig.tool_call_id} is not waiting for approval"
        if call.decision is not None or call.phase is Phase.RESOLVED:
            return f"tool call {sig.tool_call_id} was already decided"
        if sig.digest is not None and sig.digest != call.digest:
            return (
                f"the decision on tool call {sig.tool_call_id} was made on other arguments "
                f"(digest {sig.digest[:12]}..., the call's is {call.digest[:12]}...)"
            )
        return None

    def take_approval(self, sig: ApprovalSignal) -> None:
        self._calls[sig.tool_call_id].decision = sig

    def answer_handoff(self) -> str | None:
        """A person's message answers the first handoff that waits for one; its id."""
        for call in self._calls.values():
            waiting = call.pending is not None and call.pending.kind == "handoff"
            if waiting and call.result is None:
                call.result = ToolResultSignal(
                    tool_call_id=call.call.id, content="Handed over; their reply follows."
                )
                return call.call.id
        return None

    # ------------------------------------------------------------------ reading

    def pending(self) -> list[PendingCall]:
        return [c.pending for c in self._calls.values() if c.pending is not None]

    def waiting_kinds(self) -> set[PendingKind]:
        return {p.kind for p in self.pending()}

    def answers(self) -> list[ToolMessage]:
        """Answers of calls already resolved while others of the response still wait."""
        return [c.answer for c in self._calls.values() if c.answer is not None]

    def unapplied_results(self) -> dict[str, ToolResultSignal]:
        """Results received and not yet part of the conversation: a snapshot carries them."""
        carried = dict(self.early)
        for call_id, call in self._calls.items():
            if call.result is not None and call.phase is not Phase.RESOLVED:
                carried[call_id] = call.result
        return carried
