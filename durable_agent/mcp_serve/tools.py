"""What an agent looks like as an MCP tool: its name, description and argument and result
shapes, and the `CallToolResult`s a call ends with."""

from __future__ import annotations

import re
from typing import Annotated, Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

from .._output import Valid
from ..authoring._agent import Agent
from ..wire import AgentRunResult

__all__ = [
    "AgentToolArguments",
    "AgentToolResult",
    "answered",
    "refused",
    "replied",
    "tool_description",
    "tool_name",
    "validation_text",
]

DESCRIPTION_CHARS = 400
"""How much of an agent's instructions (their first paragraph) describes its tool."""
ANSWERED = ("completed", "stopped")
"""Outcomes whose final text is an answer; any other ends the call with a tool error."""
_NOT_IN_TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]")
"""MCP tool names are 1-128 characters of A-Z a-z 0-9 _ - . (spec 2025-11-25)."""

RunId = Annotated[str, Field(min_length=1, max_length=1000)]
"""A workflow id: Temporal refuses ids over 1000 bytes (`limit.maxIDLength`)."""


def _schema_without_null_defaults(schema: dict[str, Any]) -> None:
    """Optional arguments are simply absent: no `"default": null` beside `"type": "string"`."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


class AgentToolArguments(BaseModel):
    """What every agent tool takes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_schema_without_null_defaults)

    prompt: str = Field(min_length=1, description="What to ask the agent.")
    thread_id: RunId | SkipJsonSchema[None] = Field(
        default=None,
        description="Continue the conversation with this id (the first call that names it"
        " starts it); the answer is the agent's reply to this prompt.",
    )
    workflow_id: RunId | SkipJsonSchema[None] = Field(
        default=None,
        description="The run of an earlier call that was cut off (named in its progress"
        " messages and result): wait for that run instead of starting one; the prompt is not"
        " sent again. If no run has this id, one starts under it, so a retry with the same id"
        " never starts a second run.",
    )

    @model_validator(mode="after")
    def _one_run(self) -> AgentToolArguments:
        if self.thread_id is not None and self.workflow_id is not None:
            raise ValueError("give thread_id or workflow_id, not both")
        return self


class AgentToolResult(BaseModel):
    """The structured content of an answer."""

    workflow_id: str = Field(description="The run (for a thread: the thread id).")
    agent: str = Field(description="The agent that answered (after a handoff, maybe another).")
    outcome: str = Field(
        description="completed or stopped; for a thread, its state after the answer"
        " (waiting_for_user: ready for the next message)."
    )
    turns: int
    usage: dict[str, int] = Field(description="requests, input_tokens, output_tokens")


def tool_name(agent: Agent) -> str:
    return _NOT_IN_TOOL_NAME.sub("_", agent.name)[:128]


def tool_description(agent: Agent) -> str:
    """The first paragraph of the agent's instructions, then what kind of tool this is."""
    summary = " ".join(agent.instructions.strip().split("\n\n", 1)[0].split())
    if len(summary) > DESCRIPTION_CHARS:
        summary = summary[: DESCRIPTION_CHARS - 3].rstrip() + "..."
    summary = summary or f"Ask the agent {agent.name}."
    return (
        f"{summary} (A durable agent run: it survives restarts and may wait for a person's"
        " approval; its workflow_id attaches to it again.)"
    )


def answered(workflow_id: str, result: AgentRunResult, finals: dict[str, Agent]) -> CallToolResult:
    """The call's answer once its run has ended: the final text (and when the agent that gave
    it, one of `finals`, has an `output_type`, the typed value in `output`), or a tool error that
    says how the run ended when that is not an answer."""
    structured = AgentToolResult(
        workflow_id=workflow_id,
        agent=result.agent,
        outcome=result.outcome,
        turns=result.turns,
        usage=result.usage.model_dump(),
    )
    if result.outcome not in ANSWERED:
        waiting = f" with {len(result.pending)} call(s) still waiting" if result.pending else ""
        return replied(
            f"run {workflow_id} ended {result.outcome}{waiting}", structured, is_error=True
        )
    final = finals.get(result.agent)
    if final is None:  # this server's agent module is not the worker's
        text = (
            f"run {workflow_id} ended with agent {result.agent!r}, which this server does not know"
        )
        return replied(text, structured, is_error=True)
    if final.output is None:
        return replied(result.final_text or "", structured)
    if result.outcome != "completed":  # a hook's stop: no answer of the agent's type
        text = f"run {workflow_id} ended {result.outcome} without an answer of its output type"
        return replied(text, structured, is_error=True)
    return replied(result.final_text or "", structured, output=Valid(result.output))


def replied(
    text: str, structured: AgentToolResult, *, is_error: bool = False, output: Valid | None = None
) -> CallToolResult:
    """`output`: the typed answer of an agent with an `output_type` (a typed value may be
    null, so absent is None, not a null value)."""
    content = structured.model_dump(mode="json")
    if output is not None:
        content["output"] = output.value
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=content,
        is_error=is_error,
    )


def refused(reason: str) -> CallToolResult:
    """A tool error of one line, which a model can read and correct itself by."""
    line = " ".join(reason.split())
    return CallToolResult(content=[TextContent(type="text", text=line)], is_error=True)


def validation_text(exc: ValidationError) -> str:
    """`prompt: Field required; colour: Extra inputs are not permitted`."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)
