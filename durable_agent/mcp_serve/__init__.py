"""`durable-agent mcp-serve`: durable agents offered as MCP tools, one tool per agent.

A call starts a durable run (or attaches to one) and answers with the run's final text once
the run ends. The run belongs to Temporal, not to the call: a call that is cut off (a client
timeout, a dropped connection, this server restarted) leaves the run going, and a call with
the `workflow_id` that the first call's progress notifications named attaches to it again. A
run that waits for a person (an approval, an external result) keeps the call waiting until
someone answers it with `durable-agent approve` or the HTTP API; a caller that sent a progress
token hears each change of the run's state meanwhile.

Error rules follow the MCP spec (2025-11-25, SEP-1303): an unknown tool is a protocol error
(-32602); arguments that do not validate and runs that fail are tool errors (`isError`) with
a one-line reason, so a model can read them and correct itself.
"""

from __future__ import annotations

from .calls import AgentTools
from .progress import KEEPALIVE_SECONDS
from .server import listen, mcp_server, serve_http, serve_stdio
from .tools import AgentToolArguments, AgentToolResult, tool_description, tool_name

__all__ = [
    "KEEPALIVE_SECONDS",
    "AgentToolArguments",
    "AgentToolResult",
    "AgentTools",
    "listen",
    "mcp_server",
    "serve_http",
    "serve_stdio",
    "tool_description",
    "tool_name",
]
