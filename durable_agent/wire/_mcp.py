"""What the workflow sends to an MCP server's list activity (`mcp.<server>.list_tools`) and what it
answers. A call to one of its tools (`mcp.<server>.<tool>`) carries a `ToolInvocation` and
answers a `ToolOutcome`, as a function tool's does."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._conversation import Data


class MCPListTools(Data):
    """Input of `mcp.<server>.list_tools`."""

    server: str


class MCPToolInfo(Data):
    """One tool as the server lists it: its JSON schema is what the model sees."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


class MCPToolList(Data):
    """Output of `mcp.<server>.list_tools`: recorded in history, so a replay sees the tools the
    run saw, whatever the server lists today."""

    server: str
    tools: list[MCPToolInfo] = Field(default_factory=list)
