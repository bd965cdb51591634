"""Agents: a name, a model, instructions, tools and the agents (or people) it may hand off to."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

from .._output import OutputSpec
from ..wire import (
    SUMMARY_INSTRUCTIONS,
    AssistantMessage,
    Budget,
    ContextPolicy,
    GuardrailKind,
    ModelRequest,
    ModelSettings,
    ToolSpec,
)
from ._guardrails import Guardrail
from ._hooks import Hook, hook
from ._mcp import MCPServer, MCPTool
from ._tool import FROM_AGENT, HEARTBEAT_TIMEOUT, Tool, ToolKind, tool


@dataclass(eq=False)
class ScriptedModel:
    """An offline, deterministic model for demos and tests.

    `script` is either a list of replies, where reply *n* answers the conversation's *n*-th model
    call (counted by the assistant messages already in it, so retries and replays get the same
    answer, those its context window left out included), or a function of the request. A reply is
    a string or an `AssistantMessage`; a script of replies answers its context window's summary
    calls itself.
    """

    name: str
    script: Sequence[str | AssistantMessage] | Callable[[ModelRequest], str | AssistantMessage]
    chunk_delay: float = 0.0
    """Seconds between the pieces (words) of a streamed reply: a slow model, to watch it
    stream in demos and to interrupt it in tests."""

    @property
    def model_string(self) -> str:
        return f"scripted:{self.name}"

    def reply(self, request: ModelRequest) -> AssistantMessage:
        if callable(self.script):
            answer = self.script(request)
        elif request.instructions == SUMMARY_INSTRUCTIONS:  # its context window's summary
            size = sum(len(m.content or "") for m in request.messages)
            answer = f"[{self.name}: a summary of {size} characters of conversation]"
        else:
            turn = sum(1 for m in request.messages if m.role == "assistant")
            turn += request.window.replies_before if request.window else 0  # left out of it
            if turn >= len(self.script):
                raise IndexError(f"scripted model {self.name!r} has no reply for turn {turn}")
            answer = self.script[turn]
        if isinstance(answer, str):
            return AssistantMessage(content=answer)
        return answer.model_copy()


@dataclass(eq=False)
class Handoff:
    """A transfer the model can make. With `agent=None` control passes to a person or the
    application: the run pauses until a `user_message` or `tool_result` signal answers."""

    name: str
    agent: Agent | None = None
    description: str = ""

    @property
    def tool_name(self) -> str:
        return "transfer_to_" + re.sub(r"[^A-Za-z0-9_-]", "_", self.name)[:52]

    def spec(self) -> ToolSpec:
        description = self.description or (
            f"Hand the conversation over to {self.name}."
            if self.agent is not None
            else f"Hand the conversation over to {self.name} (a person or the application)."
        )
        return ToolSpec(
            name=self.tool_name,
            description=description,
            parameters={
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "Why you hand over."}},
            },
        )


def person(name: str, description: str = "") -> Handoff:
    """A handoff to a person or the application, answered by a signal."""
    return Handoff(name=name, agent=None, description=description)


@dataclass(eq=False)
class SubAgent:
    """An agent offered to another as a tool (`Agent.as_tool`). Each call runs it as a child
    workflow with its own conversation and history: its final answer is the call's result."""

    agent: Agent
    name: str
    description: str
    max_turns: int | None = None

    def spec(self) -> ToolSpec:
        task = "The task, with everything the agent needs to know: it sees nothing else."
        return ToolSpec(
            name=self.name,
            description=self.description,
            parameters={
                "type": "object",
                "properties": {"input": {"type": "string", "description": task}},
                "required": ["input"],
            },
        )


@dataclass(eq=False)
class Agent:
    """What the workflow runs. Data and functions: the workflow reads it, activities call it."""

    name: str
    model: str | ScriptedModel | Sequence[str | ScriptedModel]
    """`provider:name` (or a `ScriptedModel`); a list is a primary and its fallbacks, tried in
    order when a call fails for good (README "Fallback models")."""
    instructions: str = ""
    tools: Sequence[Tool | MCPServer | SubAgent | Callable[..., Any]] = ()
    """Functions, `Tool`s, `MCPServer`s whose tools the run lists once (see README "MCP"), and
    other agents as tools (`other.as_tool()`, README "Sub-agents")."""
    handoffs: Sequence[Agent | Handoff] = ()
    hooks: Sequence[Hook | Callable[..., Any]] = ()
    """Run after every model completion; see `durable_agent.hook`."""
    settings: ModelSettings = field(default_factory=ModelSettings)
    max_turns: int = 50
    local_model: bool = False
    """Call the model as a local activity (fast mode), for local model servers; see README."""
    stream: bool = True
    """Stream the model's reply to the run's observers while the call runs (README "Live
    runs"): the recorded reply is the same. Local models (fast mode) never stream."""
    model_timeout: timedelta = timedelta(minutes=2)
    model_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            maximum_attempts=8, maximum_interval=timedelta(minutes=1)
        )
    )
    budget: Budget | None = None
    """A limit on the runs this agent starts, sub-agents included (README "Budgets"); a run's
    own `budget` wins."""
    heartbeat_timeout: timedelta | None = HEARTBEAT_TIMEOUT
    """For its model calls, and its tools and hooks that set none: a call whose worker has not
    heartbeaten for this long is retried elsewhere; `None` turns heartbeats off."""
    context: ContextPolicy | None = field(default_factory=ContextPolicy)
    """What its model is sent of a long conversation: a window kept under the model's context
    (README "Context window"); `None` sends the whole conversation every call."""

    output_type: Any = str
    """The final answer's type (README "Typed outputs"): a pydantic model, a dataclass, a
    TypedDict, a list or union of them; `str` (the default) is plain text, unvalidated."""
    output_retries: int = 2
    """How many times an answer that does not validate goes back to the model with the error
    before the run fails (`OutputValidationFailed`)."""

    guardrails: Sequence[Guardrail] = ()
    """Input, output and tool guardrails (`input_guardrail(...)`, README "Guardrails")."""

    _specs: list[ToolSpec] | None = field(default=None, init=False, repr=False)
    _output: OutputSpec | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.tools = [
            t if isinstance(t, Tool | MCPServer | SubAgent) else tool(t) for t in self.tools
        ]
        self.handoffs = [h if isinstance(h, Handoff) else Handoff(h.name, h) for h in self.handoffs]
        self.hooks = [h if isinstance(h, Hook) else hook(h) for h in self.hooks]
        names = [t.name for t in self.tool_list] + [h.tool_name for h in self.handoff_list]
        names += [s.name for s in self.sub_agents]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"agent {self.name!r} has duplicate tool names: {sorted(duplicates)}")
        if not self.models:
            raise ValueError(f"agent {self.name!r} has an empty list of models")
        if self.output_type is not str:  # a type pydantic cannot take fails here, not mid-run
            self._output = OutputSpec(self.output_type)
        servers = [s.name for s in self.mcp_servers]
        if len(set(servers)) != len(servers):
            raise ValueError(f"agent {self.name!r} has two MCP servers with one name: {servers}")

    @property
    def tool_list(self) -> list[Tool]:
        return [t for t in self.tools if isinstance(t, Tool)]

    @property
    def sub_agents(self) -> list[SubAgent]:
        return [t for t in self.tools if isinstance(t, SubAgent)]

    @property
    def mcp_servers(self) -> list[MCPServer]:
        return [t for t in self.tools if isinstance(t, MCPServer)]

    @property
    def hook_list(self) -> list[Hook]:
        return [h for h in self.hooks if isinstance(h, Hook)]

    @property
    def handoff_list(self) -> list[Handoff]:
        return [h for h in self.handoffs if isinstance(h, Handoff)]

    @property
    def model_string(self) -> str:
        """The primary model's `provider:name`."""
        return self.model_strings[0]

    @property
    def models(self) -> list[str | ScriptedModel]:
        """The primary model, then its fallbacks."""
        return [self.model] if isinstance(self.model, str | ScriptedModel) else list(self.model)

    @property
    def model_strings(self) -> list[str]:
        return [m.model_string if isinstance(m, ScriptedModel) else m for m in self.models]

    def tool_specs(self) -> list[ToolSpec]:
        """Computed once: JSON-schema generation would otherwise cost every turn."""
        if self._specs is None:
            self._specs = [t.spec() for t in self.tool_list] + [h.spec() for h in self.handoff_list]
            self._specs += [s.spec() for s in self.sub_agents]
        return self._specs

    def guardrail_list(self, kind: GuardrailKind) -> list[Guardrail]:
        return [g for g in self.guardrails if g.kind == kind]

    @property
    def output(self) -> OutputSpec | None:
        """The typed output's schema and validator, None for plain text."""
        return self._output

    def find_tool(self, name: str) -> Tool | Handoff | SubAgent | None:
        for t in self.tool_list:
            if t.name == name:
                return t
        for h in self.handoff_list:
            if h.tool_name == name:
                return h
        for s in self.sub_agents:
            if s.name == name:
                return s
        return None

    def as_tool(
        self, name: str | None = None, description: str | None = None, max_turns: int | None = None
    ) -> SubAgent:
        """This agent as a tool of another: `Agent("planner", ..., tools=[researcher.as_tool()])`.
        Each call runs it as a child workflow (README "Sub-agents")."""
        return SubAgent(
            agent=self,
            name=name or self.name,
            description=description
            or f"Give the {self.name} agent a task; it works on it alone and answers with the"
            " result.",
            max_turns=max_turns,
        )

    def heartbeat_for(self, call: Tool | Hook | MCPServer | MCPTool) -> timedelta | None:
        """The heartbeat timeout a tool or hook call runs with: its own, else this agent's."""
        own = call.heartbeat_timeout
        return self.heartbeat_timeout if own is FROM_AGENT else own

    def reachable(self) -> list[Agent]:
        """This agent and every agent reachable by handoffs, each once; `ValueError` when two
        different agents share a name (a handoff would reach only one of them)."""
        return list(handoff_graph([self]).values())


def handoff_graph(roots: Iterable[Agent]) -> dict[str, Agent]:
    """Every agent in `roots` and reachable from them by handoffs or as sub-agents, by name.

    Names are how runs find their agent, so two different agents with one name are refused,
    naming where each was found, rather than the first silently winning.
    """
    found: dict[str, tuple[Agent, str]] = {}
    for root in roots:
        stack: list[tuple[Agent, str]] = [(root, "given as a root agent")]
        while stack:
            agent, origin = stack.pop()
            seen = found.get(agent.name)
            if seen is not None:
                if seen[0] is not agent:
                    raise ValueError(
                        f"two different agents are named {agent.name!r}: one {seen[1]}, "
                        f"one {origin}; hand off to the same Agent object or rename one"
                    )
                continue
            found[agent.name] = (agent, origin)
            stack.extend(
                (h.agent, f"reached from {agent.name!r}")
                for h in agent.handoff_list
                if h.agent is not None
            )
            stack.extend((s.agent, f"a sub-agent of {agent.name!r}") for s in agent.sub_agents)
            stack.extend(
                (g.agent, f"a guardrail of {agent.name!r}")
                for g in agent.guardrails
                if g.agent is not None
            )
    return {name: agent for name, (agent, _) in found.items()}


__all__ = ["Agent", "Handoff", "ScriptedModel", "SubAgent", "ToolKind", "person"]
