"""The MCP tools a run has listed, by server: what the model is offered and how a call it makes
is found again. Listed once a run per server (`list_missing`: the list activity's result is in
history, so a replay offers the same tools), and again after continue-as-new. `MCPToolsets` is
plain Python, unit-tested without a server (tests/test_mcp.py).
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models and the agent definitions the worker registered.
    from durable_agent.authoring._agent import Agent
    from durable_agent.authoring._mcp import MCPServer, MCPTool
    from durable_agent.wire import MCPListTools, MCPToolList, ToolSpec

from .conversation import Conversation
from .failures import CALL_FAILED, cause_text, reraise_cancellation


class MCPToolsets:
    def __init__(self) -> None:
        self._lists: dict[str, MCPToolList] = {}
        self._by_agent: dict[str, dict[str, MCPTool]] = {}

    def missing(self, agent: Agent) -> list[MCPServer]:
        """The agent's servers whose tools this run has not listed yet."""
        return [s for s in agent.mcp_servers if s.name not in self._lists]

    def add(self, listing: MCPToolList) -> None:
        self._lists[listing.server] = listing
        self._by_agent.clear()

    def tools(self, agent: Agent) -> dict[str, MCPTool]:
        """The agent's MCP tools by the name the model calls them. A name the agent already
        uses (a function tool, a handoff, an earlier server's tool) keeps its first owner."""
        found = self._by_agent.get(agent.name)
        if found is not None:
            return found
        found = {}
        for server in agent.mcp_servers:
            listing = self._lists.get(server.name)
            for info in listing.tools if listing is not None else ():
                tool = server.tool(info)
                taken = tool.name in found or agent.find_tool(tool.name) is not None
                if server.offers(info.name) and not taken:
                    found[tool.name] = tool
        self._by_agent[agent.name] = found
        return found

    def specs(self, agent: Agent) -> list[ToolSpec]:
        return [t.spec() for t in self.tools(agent).values()]


async def list_missing(toolsets: MCPToolsets, agent: Agent, conversation: Conversation) -> None:
    """List the tools of the agent's MCP servers this run has not listed yet, all at once.
    No command at all for an agent without MCP servers. A listing that fails is tried again
    before the next model call; meanwhile that server's tools are not offered."""
    missing = toolsets.missing(agent)
    if missing:
        await asyncio.gather(*(_list(toolsets, agent, s, conversation) for s in missing))


async def _list(
    toolsets: MCPToolsets, agent: Agent, server: MCPServer, conversation: Conversation
) -> None:
    try:
        listing: MCPToolList = await workflow.execute_activity(
            server.list_activity,
            MCPListTools(server=server.name),
            result_type=MCPToolList,
            start_to_close_timeout=server.timeout,
            retry_policy=server.retry,
            heartbeat_timeout=agent.heartbeat_for(server),
        )
    except CALL_FAILED as exc:
        reraise_cancellation(exc)
        conversation.event("tool", "mcp_list_failed", server=server.name, error=cause_text(exc))
        return
    toolsets.add(listing)
    conversation.event("tool", "mcp_tools_listed", server=server.name, tools=len(listing.tools))
