"""The MCP tools a run has listed, by server: what the model is offered and how a call it makes
is found again. Listed once a run per server (the list activity's result is in history, so a
replay offers the same tools), and again after continue-as-new. Plain Python, unit-tested
without a server (tests/test_mcp.py).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models and the agent definitions the worker registered.
    from durable_agent._agent import Agent
    from durable_agent._mcp import MCPServer, MCPTool
    from durable_agent.wire import MCPToolList, ToolSpec


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
