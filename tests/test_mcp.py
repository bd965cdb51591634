"""MCP servers as toolsets (issue 13, item 3): a real MCP server (tests/mcp_server.py) over stdio
and over streamable HTTP on a loopback port, an agent calling its tools end to end on the dev
server, its schemas reaching the model, errors and bad arguments going back to the model, an
approval, one listing a run, and a replay of the recorded run."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, MCPServer, ModelRequest, ScriptedModel, ToolCall, tool
from durable_agent.activities.mcp import close_connections
from durable_agent.replay import agent_replayer
from durable_agent.wire import MCPToolInfo, MCPToolList
from durable_agent.workflows.call_book import Route, route_of
from durable_agent.workflows.toolsets import MCPToolsets

from .conftest import agent_client, calls, new_id, tool_messages
from .helpers import wait_pending
from .processes import ROOT, free_port

STDIO = [sys.executable, "-m", "tests.mcp_server"]


@pytest.fixture(autouse=True)
async def _closed_sessions() -> AsyncIterator[None]:
    """Each test's MCP sessions (and stdio subprocesses) end with it."""
    yield
    await close_connections()


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """tests/mcp_server.py over streamable HTTP on a loopback port; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [*STDIO, "--http", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # bounded: 20 s
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail("the MCP HTTP server exited at start")
                time.sleep(0.1)
        else:
            pytest.fail("the MCP HTTP server did not listen within 20 s")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


def scripted(replies: list[Any], requests: list[ModelRequest]) -> ScriptedModel:
    """Reply *n* answers the *n*-th model call (by the assistant messages already in the
    conversation, so replays and retries get the same reply); every request is kept."""

    def script(request: ModelRequest) -> Any:
        requests.append(request)
        return replies[sum(1 for m in request.messages if m.role == "assistant")]

    return ScriptedModel(f"mcp-{new_id()}", script)


async def activity_types(handle: WorkflowHandle[Any, Any]) -> list[str]:
    found = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            found.append(event.activity_task_scheduled_event_attributes.activity_type.name)
    return found


# ---------------------------------------------------------------------- end to end


async def test_an_agent_calls_stdio_mcp_tools_end_to_end_and_replays(
    dev_env: WorkflowEnvironment,
) -> None:
    requests: list[ModelRequest] = []
    model = scripted(
        [
            calls(("c1", "add", {"a": 2, "b": 3}), ("c2", "shout", {"text": "hi"})),
            calls(
                ("c3", "explode", {"reason": "on purpose"}),
                ("c4", "add", {"a": "two"}),
                ("c5", "add", "{not json"),
                ("c6", "no_such_tool", {}),
            ),
            "done",
        ],
        requests,
    )
    files = MCPServer("files", command=STDIO, env={"TAG": "t1"}, cwd=str(ROOT))
    agent = Agent("mcp-stdio", model=model, tools=[files])
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("mcp-stdio", "add and shout")
        result = await asyncio.wait_for(handle.result(), 60)

    assert result.final_text == "done"
    answers = {m.tool_call_id: m for m in tool_messages(result.messages)}
    assert (answers["c1"].content, answers["c1"].is_error) == ("5", False)
    assert answers["c2"].content == "HI (t1)"  # the server got its env
    assert answers["c3"].is_error and "exploded: on purpose" in answers["c3"].content
    assert answers["c4"].is_error and "validation" in answers["c4"].content  # the server's check
    assert answers["c5"].is_error and "not valid JSON" in answers["c5"].content
    assert answers["c6"].is_error and "unknown tool 'no_such_tool'" in answers["c6"].content
    assert "add" in answers["c6"].content  # the listing names the MCP tools too

    # The server's JSON schemas are the tools' schemas the model sees, on every call.
    specs = {s.name: s for s in requests[0].tools}
    assert set(specs) == {"add", "shout", "env_var", "explode", "delete_file", "crash"}
    assert specs["add"].parameters["properties"]["a"]["type"] == "integer"
    assert specs["add"].parameters["required"] == ["a", "b"]
    assert specs["add"].description.startswith("Add two integers.")
    assert all({s.name for s in r.tools} == set(specs) for r in requests)

    types = await activity_types(handle)
    assert types.count("mcp.files.list_tools") == 1
    assert types.index("mcp.files.list_tools") < types.index("model.complete")
    assert {"mcp.files.add", "mcp.files.shout", "mcp.files.explode"} <= set(types)
    assert "mcp.files.no_such_tool" not in types  # unknown: answered without an activity

    history = await handle.fetch_history()
    replayed = await agent_replayer([agent]).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure


async def test_a_stdio_server_inherits_the_worker_environment_but_its_secrets_plus_env(
    dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: the server got only `env=` and the MCP SDK's six variables, though `env` was
    documented as added to the worker's environment."""
    monkeypatch.setenv("MCP_TEST_INHERITED", "from the worker")
    monkeypatch.setenv("MCP_TEST_REPLACED", "the worker's")
    monkeypatch.setenv("TEMPORAL_API_KEY", "the worker's Temporal key")
    requests: list[ModelRequest] = []
    asked = ("MCP_TEST_INHERITED", "MCP_TEST_REPLACED", "TEMPORAL_API_KEY", "TAG")
    model = scripted(
        [calls(*((name, "env_var", {"name": name}) for name in asked)), "done"], requests
    )
    env = {"TAG": "t2", "MCP_TEST_REPLACED": "env="}
    files = MCPServer("files", command=STDIO, env=env, cwd=str(ROOT))
    agent = Agent("mcp-env", model=model, tools=[files])
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("mcp-env", "read the environment")
        result = await asyncio.wait_for(handle.result(), 60)
    answers = {m.tool_call_id: m.content for m in tool_messages(result.messages)}
    assert answers == {
        "MCP_TEST_INHERITED": "from the worker",
        "MCP_TEST_REPLACED": "env=",
        "TEMPORAL_API_KEY": "<unset>",
        "TAG": "t2",
    }


def test_the_withheld_variables_are_the_ones_the_worker_reads_secrets_from() -> None:
    from durable_agent import codec_server, encryption
    from durable_agent.authoring._mcp import WITHHELD_VARIABLES
    from durable_agent.serve import app

    ours = {
        encryption.KEYS_VARIABLE,
        encryption.KEY_FILE_VARIABLE,
        codec_server.TOKEN_VARIABLE,
        app.TOKEN_VARIABLE,
    }
    assert ours <= WITHHELD_VARIABLES
    server = MCPServer("s", command=["x"], env={"TEMPORAL_API_KEY": "passed on purpose"})
    worker = {"PATH": "/bin", "DURABLE_AGENT_ENCRYPTION_KEYS": "k1:...", "TEMPORAL_API_KEY": "k"}
    assert server.environment(worker) == {"PATH": "/bin", "TEMPORAL_API_KEY": "passed on purpose"}


async def test_an_agent_calls_an_http_mcp_server_with_an_allow_list_and_a_prefix(
    dev_env: WorkflowEnvironment, http_server: str
) -> None:
    requests: list[ModelRequest] = []
    model = scripted([calls(("c1", "web_add", {"a": 4, "b": 3})), "seven"], requests)
    search = MCPServer(
        "search", url=http_server, headers={"X-Test": "1"}, tools=["add", "shout"], prefix="web_"
    )

    @tool
    def local_note(text: str) -> str:
        """Keep a note."""
        return text

    agent = Agent("mcp-http", model=model, tools=[local_note, search])
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("mcp-http", "add")
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.final_text == "seven"
    [answer] = tool_messages(result.messages)
    assert (answer.content, answer.is_error) == ("7", False)
    assert [s.name for s in requests[0].tools] == ["local_note", "web_add", "web_shout"]
    assert (await activity_types(handle)).count("mcp.search.list_tools") == 1


async def test_an_mcp_tool_that_requires_approval_waits_for_it(
    dev_env: WorkflowEnvironment,
) -> None:
    model = scripted(
        [calls(("c1", "delete_file", {"path": "/tmp/x"}), ("c2", "add", {"a": 1, "b": 1})), "ok"],
        [],
    )
    files = MCPServer("files", command=STDIO, cwd=str(ROOT), requires_approval={"delete_file"})
    agent = Agent("mcp-approval", model=model, tools=[files])
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("mcp-approval", "delete it")
        [pending] = await wait_pending(client, handle.id)
        assert (pending.tool_call_id, pending.kind) == ("c1", "approval")
        assert "mcp.files.delete_file" not in await activity_types(handle)
        await client.decide(handle.id, "c1", approved=True, digest=pending.digest)
        result = await asyncio.wait_for(handle.result(), 60)
    answers = {m.tool_call_id: m.content for m in tool_messages(result.messages)}
    assert answers == {"c1": "deleted /tmp/x", "c2": "2"}


# ---------------------------------------------------------------------- without a server


def _listing(server: str, *names: str) -> MCPToolList:
    return MCPToolList(
        server=server, tools=[MCPToolInfo(name=n, description=f"{n}!") for n in names]
    )


def test_listed_tools_keep_their_first_owner_and_the_allow_list() -> None:
    @tool
    def add(a: int) -> int:
        """A function tool named like an MCP tool."""
        return a

    one = MCPServer("one", command=["x"], tools=["add", "read", "write"])
    two = MCPServer("two", url="http://127.0.0.1:1/mcp")
    agent = Agent("owners", model="scripted:x", tools=[add, one, two])
    toolsets = MCPToolsets()
    assert toolsets.missing(agent) == [one, two]
    toolsets.add(_listing("one", "add", "read", "delete", "a.b"))
    toolsets.add(_listing("two", "read", "write"))
    assert toolsets.missing(agent) == []
    listed = toolsets.tools(agent)
    assert {n: (t.server.name, t.info.name) for n, t in listed.items()} == {
        "read": ("one", "read"),  # the first server wins; "add" stays the function tool
        "write": ("two", "write"),
    }
    assert listed["write"].activity_name == "mcp.two.write"
    assert [s.name for s in toolsets.specs(agent)] == ["read", "write"]


def test_mcp_calls_route_by_the_listing_and_its_approval_policy() -> None:
    def risky(name: str, arguments: dict[str, Any]) -> bool:
        return name == "write" and arguments.get("force") is True

    server = MCPServer("fs", command=["x"], requires_approval=risky)
    agent = Agent("routes", model="scripted:x", tools=[server])
    toolsets = MCPToolsets()
    toolsets.add(_listing("fs", "write"))
    listed = toolsets.tools(agent)

    def route(name: str, arguments: object) -> tuple[Route, bool]:
        call = ToolCall(id="c", name=name, arguments=json.dumps(arguments))
        return route_of(agent, call, listed)

    assert route("write", {"force": True}) == (Route.MCP, True)
    assert route("write", {"force": False}) == (Route.MCP, False)
    assert route("read", {}) == (Route.UNKNOWN, False)
    assert listed["write"].needs_approval("[1]") is False  # answered with its error instead


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({}, "exactly one of command= or url="),
        ({"command": ["x"], "url": "http://127.0.0.1:1"}, "exactly one of command= or url="),
        ({"command": "python -m x"}, "non-empty list"),
    ],
)
def test_a_server_needs_one_transport(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MCPServer("files", **options)


def test_two_servers_of_one_agent_cannot_share_a_name() -> None:
    with pytest.raises(ValueError, match="two MCP servers with one name"):
        Agent(
            "twins",
            model="scripted:x",
            tools=[MCPServer("s", command=["x"]), MCPServer("s", command=["y"])],
        )


async def test_a_server_that_dies_mid_call_is_reopened_and_the_run_goes_on(
    dev_env: WorkflowEnvironment,
) -> None:
    """The stdio subprocess exits during `crash`: each attempt fails, the last attempt's
    failure goes to the model, and the next call runs on a new subprocess."""
    model = scripted([calls(("c1", "crash", {})), calls(("c2", "add", {"a": 1, "b": 2})), "ok"], [])
    files = MCPServer(
        "files",
        command=STDIO,
        cwd=str(ROOT),
        retry=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=100)),
    )
    agent = Agent("mcp-crash", model=model, tools=[files])
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("mcp-crash", "crash it")
        result = await asyncio.wait_for(handle.result(), 60)
    answers = {m.tool_call_id: m for m in tool_messages(result.messages)}
    assert answers["c1"].is_error and "tool crash failed" in answers["c1"].content
    assert (answers["c2"].content, answers["c2"].is_error) == ("3", False)
    assert (await activity_types(handle)).count("mcp.files.crash") == 1  # one activity, 2 tries
