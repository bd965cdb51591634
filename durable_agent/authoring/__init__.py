"""The authoring API: what agents are made of. `Agent` (with `ScriptedModel`, handoffs and
sub-agents), tools (`@tool`, `@long_running_tool`, `@external_tool`, `ToolContext`), hooks
(`@hook`), MCP servers (`MCPServer`), and the registry a worker fills with the agents it
serves (`_registry`, which workflow code reads). `durable_agent` re-exports the public names.

Layer "agents" (tests/test_layout.py): it imports the wire only, and the loop, the activities
and the edges import it."""

from ._agent import Agent, Handoff, ScriptedModel, SubAgent, person
from ._context import ToolContext, tool_context
from ._guardrails import Guardrail, input_guardrail, output_guardrail, tool_guardrail
from ._hooks import Hook, hook
from ._mcp import MCPServer
from ._tool import Tool, ToolKind, external_tool, long_running_tool, tool

__all__ = [
    "Agent",
    "Guardrail",
    "Handoff",
    "Hook",
    "MCPServer",
    "ScriptedModel",
    "SubAgent",
    "Tool",
    "ToolContext",
    "ToolKind",
    "external_tool",
    "hook",
    "input_guardrail",
    "long_running_tool",
    "output_guardrail",
    "person",
    "tool",
    "tool_context",
    "tool_guardrail",
]
