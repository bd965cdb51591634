"""The MCP server that offers the tools, over stdio or streamable HTTP."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import uvicorn
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from .._http import listen as _listen
from ..authoring._agent import Agent
from ..client import AgentClient
from .calls import AgentTools
from .progress import KEEPALIVE_SECONDS

__all__ = ["listen", "mcp_server", "serve_http", "serve_stdio"]


def mcp_server(
    agents: Sequence[Agent], client: AgentClient, *, keepalive: float = KEEPALIVE_SECONDS
) -> Server[Any]:
    """An MCP server (the `mcp` SDK's low-level `Server`) offering each agent as a tool.
    Raises ValueError when two agents' names make one tool name."""
    tools = AgentTools(agents, client, keepalive)
    return Server(
        "durable-agent",
        instructions="Each tool is an agent. A call is a durable run: if a call is cut off,"
        " call the tool again with the workflow_id its progress named.",
        get_tool_input_schema=tools.tool_input_schema,
        on_list_tools=tools.list_tools,
        on_call_tool=tools.call_tool,
    )


async def serve_stdio(server: Server[Any]) -> None:
    """Serve over this process's stdin and stdout until the client closes them."""
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def listen(host: str, port: int) -> socket.socket:
    return _listen(host, port, "MCP server")


async def serve_http(server: Server[Any], host: str, sock: socket.socket) -> None:
    """Serve streamable HTTP at /mcp on `sock` (from `listen`) until interrupted. On a loopback
    `host` the SDK refuses other Host and Origin headers (DNS rebinding protection)."""
    app = server.streamable_http_app(streamable_http_path="/mcp", host=host)
    await uvicorn.Server(uvicorn.Config(app, log_level="warning")).serve(sockets=[sock])
