"""A real MCP server for tests/test_mcp.py, built with the `mcp` package's server API (FastMCP,
named `MCPServer` since mcp 2): `python -m tests.mcp_server` serves it over stdio, and
`python -m tests.mcp_server --http PORT` over streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import argparse
import os

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("test-files")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return f"{a + b}"


@server.tool()
def shout(text: str) -> str:
    """Return the text in capitals, tagged with the server's TAG environment variable."""
    return f"{text.upper()} ({os.environ.get('TAG', 'untagged')})"


@server.tool()
def env_var(name: str) -> str:
    """The value of one of the server's environment variables, or <unset>."""
    return os.environ.get(name, "<unset>")


@server.tool()
def explode(reason: str) -> str:
    """Always fail with the given reason."""
    raise ToolError(f"exploded: {reason}")


@server.tool()
def delete_file(path: str) -> str:
    """Delete a file (pretend)."""
    return f"deleted {path}"


@server.tool()
def crash() -> str:
    """End the server process in the middle of the call."""
    os._exit(3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve streamable HTTP on this loopback port")
    args = parser.parse_args()
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
