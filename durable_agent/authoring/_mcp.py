"""MCP servers as toolsets: an agent's tools can come from a Model Context Protocol server.

`MCPServer` is configuration only; it never connects from here. The worker's MCP activities
(`activities/mcp.py`) hold the connections; the workflow lists a server's tools once a run
through the activity `mcp.<server>.list_tools` and calls each tool as `mcp.<server>.<tool>`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

from ..wire import MCPToolInfo, ToolSpec
from ._tool import FROM_AGENT, HeartbeatTimeout, json_object

MCPApprovalPolicy = bool | Collection[str] | Callable[[str, dict[str, Any]], bool]
"""`requires_approval` of a server: always, never, the names of the tools that need it, or a
deterministic function of (tool name, arguments), called in the workflow."""

WITHHELD_VARIABLES = frozenset(
    {
        "DURABLE_AGENT_ENCRYPTION_KEYS",
        "DURABLE_AGENT_ENCRYPTION_KEY_FILE",
        "DURABLE_AGENT_CODEC_TOKEN",
        "DURABLE_AGENT_SERVE_TOKEN",
        "TEMPORAL_API_KEY",
        "TEMPORAL_CODEC_AUTH",
        "TEMPORAL_TLS_CLIENT_KEY_DATA",
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
    }
)
"""The worker's own secrets, which an MCP stdio server does not inherit: the keys that decrypt
every run's history, the tokens of our HTTP servers and the worker's credentials to Temporal
(tests/test_mcp.py checks the names against the modules that read them). A third-party server
has no use for them and should not be able to read them."""

_SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,48}")
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(eq=False)
class MCPServer:
    """An MCP server whose tools an agent may call: over stdio (`command`, a subprocess per
    worker) or streamable HTTP (`url`). `env`, `cwd` and `headers` stay in the worker: only the
    server's name crosses Temporal."""

    name: str
    _: KW_ONLY
    command: Sequence[str] | None = None
    env: Mapping[str, str] | None = None
    """Variables added to (or replacing) what the subprocess inherits from the worker: its
    whole environment except `WITHHELD_VARIABLES` (see `environment`)."""
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    tools: Collection[str] | None = None
    """Only these of the server's tools are offered to the model; `None`: all of them."""
    prefix: str = ""
    """Prepended to each tool's name as the model sees it, when two servers share tool names."""
    requires_approval: MCPApprovalPolicy = False
    deadline: timedelta | None = None
    """How long a call may wait for its approval; `None` waits for ever."""
    fail_on_deadline: bool = False
    timeout: timedelta = timedelta(minutes=5)
    """Start-to-close timeout of one attempt of a call or of the listing."""
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(maximum_attempts=3))
    """Retries after the connection failed; the server's own errors go to the model at once."""
    heartbeat_timeout: HeartbeatTimeout = FROM_AGENT
    cache_ttl: timedelta = timedelta(minutes=5)
    """How long a worker reuses the tool list it fetched before it asks the server again."""

    def __post_init__(self) -> None:
        if not _SERVER_NAME.fullmatch(self.name):
            raise ValueError(f"MCP server name {self.name!r} must match {_SERVER_NAME.pattern}")
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server {self.name!r} needs exactly one of command= or url=")
        if self.command is not None and (isinstance(self.command, str) or not self.command):
            raise ValueError(f"MCP server {self.name!r}: command= is a non-empty list of strings")
        if isinstance(self.tools, str):
            raise TypeError(f"MCP server {self.name!r}: tools= is a collection of names")

    @property
    def list_activity(self) -> str:
        """The activity type that lists the tools: a wire contract, keep it stable."""
        return f"mcp.{self.name}.list_tools"

    def environment(self, worker: Mapping[str, str]) -> dict[str, str]:
        """A stdio server's environment: the worker's (`worker`, its `os.environ`) without
        `WITHHELD_VARIABLES`, then `env` on top. A server run by `npx` or `uvx` needs PATH,
        HOME and proxy settings, and tools need their own API keys, as any subprocess would
        get them; `env` passes a withheld variable when a server really needs it."""
        inherited = {k: v for k, v in worker.items() if k not in WITHHELD_VARIABLES}
        return {**inherited, **(self.env or {})}

    def offers(self, tool_name: str) -> bool:
        return self.tools is None or tool_name in self.tools

    def tool(self, info: MCPToolInfo) -> MCPTool:
        name = (self.prefix + _NOT_IN_NAME.sub("_", info.name))[:64]
        return MCPTool(self, info, name)


@dataclass(frozen=True, eq=False)
class MCPTool:
    """One listed tool of a server, under the name the model calls it by. It answers what the
    loop asks of a `Tool` (activity name, timeouts, retries, heartbeats, approval)."""

    server: MCPServer
    info: MCPToolInfo
    name: str
    local: bool = False

    @property
    def activity_name(self) -> str:
        return f"mcp.{self.server.name}.{self.info.name}"

    @property
    def timeout(self) -> timedelta:
        return self.server.timeout

    @property
    def retry(self) -> RetryPolicy:
        return self.server.retry

    @property
    def activity_retry(self) -> RetryPolicy:
        """As `Tool.activity_retry`: unlimited attempts, since the activity counts the
        connections that failed against `retry` and attempts lost with a dead worker not."""
        if self.local:
            return self.server.retry
        return dataclasses.replace(self.server.retry, maximum_attempts=0)

    @property
    def heartbeat_timeout(self) -> HeartbeatTimeout:
        return self.server.heartbeat_timeout

    @property
    def deadline(self) -> timedelta | None:
        return self.server.deadline

    @property
    def fail_on_deadline(self) -> bool:
        return self.server.fail_on_deadline

    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=self.name, description=self.info.description, parameters=self.info.input_schema
        )

    def needs_approval(self, arguments: str) -> bool:
        """Like `Tool.needs_approval`: arguments that are not a JSON object need none (the call
        is answered with their error); a policy that raises asks for one."""
        policy = self.server.requires_approval
        if isinstance(policy, bool):
            return policy
        if not callable(policy):
            return self.info.name in policy
        try:
            parsed = parse_arguments(arguments)
        except ValueError:
            return False
        try:
            return bool(policy(self.info.name, parsed))
        except Exception:
            return True


def parse_arguments(arguments: str) -> dict[str, Any]:
    """The model's arguments as a JSON object; `ValueError` says why they are not. The server
    checks them against its schema and answers a mismatch as an error result."""
    return json_object(arguments)


__all__ = ["WITHHELD_VARIABLES", "MCPApprovalPolicy", "MCPServer", "MCPTool"]
