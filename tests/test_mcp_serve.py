"""`durable-agent mcp-serve` as MCP clients meet it: the `mcp` SDK's own client over stdio
(it spawns the server) and over streamable HTTP (the server a subprocess on a loopback port),
against the dev server and a worker serving `tests.e2e_agents:mcp_agents`.

One server process per transport: the stdio test asks everything of one session; the HTTP
tests share one server and open a client each (cheap over HTTP).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import mcp
import pytest
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, TextContent
from pydantic import BaseModel, TypeAdapter, create_model
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, ScriptedModel
from durable_agent.client import AgentClient
from durable_agent.mcp_serve import mcp_server
from durable_agent.mcp_serve.outputs import merge_defs

from .conftest import agent_client, calls, eventually, new_id
from .e2e_agents import mcp_agents
from .processes import BIN, ROOT, free_port, log_lines

AGENTS = "tests.e2e_agents:mcp_agents"


@pytest.fixture(scope="module")
async def served(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[AgentClient, Path]]:
    """A worker for the MCP agents on a fresh task queue, and the file its tools log to."""
    log = tmp_path_factory.mktemp("mcp-serve") / "log.jsonl"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("E2E_LOG", str(log))  # `pay` logs each run of its body
        async with agent_client(dev_env.client, *mcp_agents) as (client, _):
            yield client, log


def mcp_serve(client: AgentClient, *args: str) -> list[str]:
    address = client.client.service_client.config.target_host
    return [
        *(str(BIN / "durable-agent"), "mcp-serve", AGENTS, *args),
        *("--address", address, "--task-queue", client.task_queue),
    ]


@pytest.fixture(scope="module")
async def http_url(
    served: tuple[AgentClient, Path], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """`durable-agent mcp-serve --transport http` on a free loopback port."""
    port = free_port()
    stderr = tmp_path_factory.mktemp("mcp-http") / "stderr"
    argv = mcp_serve(served[0], "--transport", "http", "--port", str(port))
    with stderr.open("wb") as err:
        process = subprocess.Popen(argv, cwd=ROOT, stderr=err)  # noqa: ASYNC220 - a server

    async def serving() -> bool:
        assert process.poll() is None, f"the server ended: {stderr.read_text()}"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    try:
        await eventually(serving, "the MCP server to start")
        yield f"http://127.0.0.1:{port}/mcp"
        assert process.poll() is None, f"the server died: {stderr.read_text()}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def text(result: CallToolResult) -> str:
    [block] = result.content
    assert isinstance(block, TextContent)
    return block.text


class Progress:
    """The progress notifications of one call, in order."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.messages: list[str] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.values.append(progress)
        self.messages.append(message or "")

    async def wait_for(self, words: str, call: asyncio.Task[CallToolResult]) -> str:
        """The first message that contains `words`; fails if the call ends first."""

        async def seen() -> bool:
            assert not call.done(), f"the call ended first: {call.result()}"
            return any(words in m for m in self.messages)

        await eventually(seen, f"a progress message with {words!r}")
        return next(m for m in self.messages if words in m)


def rpc_result(response: httpx.Response, request_id: int) -> dict[str, Any]:
    """The JSON-RPC result for `request_id`, from a JSON body or an SSE stream."""
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        messages = [response.json()]
    else:
        lines = response.text.splitlines()
        messages = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    [answer] = [m for m in messages if m.get("id") == request_id]
    assert "result" in answer, answer
    result: dict[str, Any] = answer["result"]
    return result


def runs_of_pay(log: Path, workflow_id: str) -> int:
    return sum(1 for e in log_lines(log) if e["kind"] == "pay_started" and e["wf"] == workflow_id)


async def test_stdio_lists_agents_answers_and_reports_errors(
    served: tuple[AgentClient, Path],
) -> None:
    argv = mcp_serve(served[0])
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ), cwd=ROOT)
    async with mcp.Client(params) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        echo = await session.call_tool("echo", {"prompt": "hello"})
        failed = await session.call_tool("looper", {"prompt": "go"})
        with pytest.raises(MCPError) as unknown:
            await session.call_tool("nobody", {"prompt": "hi"})
        bad = await session.call_tool("echo", {"prompt": 5, "colour": "red"})
        both = await session.call_tool(
            "echo", {"prompt": "x", "thread_id": "t", "workflow_id": "w"}
        )

    assert sorted(tools) == ["echo", "looper", "payer"]
    schema = tools["echo"].input_schema
    assert schema["required"] == ["prompt"] and schema["additionalProperties"] is False
    assert {name: p["type"] for name, p in schema["properties"].items()} == {
        "prompt": "string",
        "thread_id": "string",
        "workflow_id": "string",
    }
    assert "default" not in schema["properties"]["thread_id"]
    output = tools["echo"].output_schema
    assert output is not None
    assert {"workflow_id", "outcome", "turns", "usage"} <= set(output["required"])
    description = tools["echo"].description or ""
    assert description.startswith("Repeat the user's last message. (A durable agent run")
    assert tools["echo"].title == "echo"
    assert tools["echo"].annotations is not None and tools["echo"].annotations.open_world_hint

    assert not echo.is_error and text(echo) == "echo: hello"
    result = echo.structured_content
    assert result is not None and result["workflow_id"].startswith("echo-")
    assert (result["agent"], result["outcome"], result["turns"]) == ("echo", "completed", 1)
    assert result["usage"]["requests"] == 1

    assert failed.is_error
    reason = text(failed)
    assert reason.startswith("run looper-") and "\n" not in reason
    assert reason.endswith("failed: max_turns (1) reached without a final answer")

    assert unknown.value.error.code == INVALID_PARAMS
    assert "'nobody'" in unknown.value.error.message and "echo" in unknown.value.error.message
    assert bad.is_error
    assert text(bad) == (
        "invalid arguments: prompt: Input should be a valid string;"
        " colour: Extra inputs are not permitted"
    )
    assert both.is_error and "thread_id or workflow_id, not both" in text(both)


async def test_a_call_waits_for_an_approval_and_its_run_can_be_attached_again(
    served: tuple[AgentClient, Path], http_url: str
) -> None:
    client, log = served
    progress = Progress()
    async with mcp.Client(http_url, mode="legacy") as session:
        call = asyncio.create_task(
            session.call_tool("payer", {"prompt": "pay"}, progress_callback=progress)
        )
        waiting = await progress.wait_for("waiting_for_approval", call)
        workflow_id = waiting.split(":")[0]
        assert workflow_id.startswith("payer-mcp-"), "named by the session and request ids"
        assert waiting == f"{workflow_id}: waiting_for_approval: 1 pending call (pay p1)"
        assert progress.messages[0] == f"{workflow_id}: started"
        await client.decide(workflow_id, "p1", approved=True)
        paid = await asyncio.wait_for(call, 60)
        again = await session.call_tool("payer", {"prompt": "pay", "workflow_id": workflow_id})

    assert not paid.is_error and text(paid) == "paid"
    assert paid.structured_content is not None
    assert paid.structured_content["workflow_id"] == workflow_id
    assert text(again) == "paid" and again.structured_content == paid.structured_content
    assert runs_of_pay(log, workflow_id) == 1, "attaching started no second run"


async def test_a_call_cut_off_while_waiting_is_answered_by_a_later_call(
    served: tuple[AgentClient, Path], http_url: str
) -> None:
    """The caller picks the run's id; its first call is cut off (the client goes away) while the
    run waits for a person, and a new client with the same id gets the answer."""
    client, log = served
    chosen = new_id()
    progress = Progress()
    async with mcp.Client(http_url, mode="legacy") as session:
        arguments = {"prompt": "pay", "workflow_id": chosen}
        call = asyncio.create_task(
            session.call_tool("payer", arguments, progress_callback=progress)
        )
        await progress.wait_for("waiting_for_approval", call)
        call.cancel()
    await client.decide(chosen, "p1", approved=True)
    async with mcp.Client(http_url, mode="legacy") as session:
        answer = await session.call_tool("payer", arguments)

    assert progress.messages[0] == f"{chosen}: started"
    assert text(answer) == "paid"
    assert answer.structured_content is not None
    assert answer.structured_content["workflow_id"] == chosen
    assert runs_of_pay(log, chosen) == 1


async def test_a_thread_answers_each_message_and_stays_open(
    served: tuple[AgentClient, Path], http_url: str
) -> None:
    """Over the 2026-07-28 era (no session): progress rides each call's own response."""
    client, _ = served
    thread = new_id()
    progress = Progress()
    async with mcp.Client(http_url) as session:
        first = await session.call_tool("echo", {"prompt": "hello", "thread_id": thread})
        second = await session.call_tool(
            "echo", {"prompt": "again", "thread_id": thread}, progress_callback=progress
        )
    status = await client.status(thread)
    await client.cancel(thread)

    assert (text(first), text(second)) == ("echo: hello", "echo: again")
    assert progress.messages[0] == f"{thread}: message accepted"
    assert second.structured_content is not None
    assert second.structured_content["workflow_id"] == thread
    assert second.structured_content["outcome"] == "waiting_for_user"
    assert second.structured_content["turns"] == status.turn == 2


async def test_a_request_delivered_twice_in_a_session_starts_one_run(
    served: tuple[AgentClient, Path], http_url: str
) -> None:
    """The handshake era's session id and the JSON-RPC id name one request: when a proxy sends
    it again, the second delivery gets the first run's answer instead of starting a run."""
    client, _ = served
    version = "2025-11-25"
    headers = {"Accept": "application/json, text/event-stream"}
    hello = {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    }
    call = {"name": "echo", "arguments": {"prompt": "once"}}
    async with httpx.AsyncClient(timeout=60) as http:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
        opened = await http.post(http_url, headers=headers, json=init)
        rpc_result(opened, 1)
        headers |= {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        headers |= {"MCP-Protocol-Version": version}
        ready = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post(http_url, headers=headers, json=ready)).status_code == 202
        request = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call}
        first = rpc_result(await http.post(http_url, headers=headers, json=request), 7)
        handle = client.handle(first["structuredContent"]["workflow_id"])
        run = (await handle.describe()).run_id
        second = rpc_result(await http.post(http_url, headers=headers, json=request), 7)
        latest = (await handle.describe()).run_id

    assert first["content"] == [{"type": "text", "text": "echo: once"}]
    assert second == first
    assert latest == run, "the second delivery started no run"


async def test_a_waiting_call_repeats_its_progress(served: tuple[AgentClient, Path]) -> None:
    """While a run waits for a person, its last progress message is sent again every
    `keepalive` seconds (30 by default: shortened here to see it three times)."""
    client, _ = served
    progress = Progress()
    server = mcp_server(mcp_agents, client, keepalive=0.5)
    async with mcp.Client(server, mode="legacy") as session:  # JSON-RPC, in this process
        call = asyncio.create_task(
            session.call_tool("payer", {"prompt": "pay"}, progress_callback=progress)
        )
        waiting = await progress.wait_for("waiting_for_approval", call)

        async def repeated() -> bool:
            return progress.messages.count(waiting) >= 3

        await eventually(repeated, "the waiting message three times")
        await client.decide(waiting.split(":")[0], "p1", approved=True)
        paid = await asyncio.wait_for(call, 60)

    assert text(paid) == "paid"
    assert progress.values == sorted(set(progress.values)), "progress only increases"


class Stop(BaseModel):
    name: str
    minutes: int


class Route(BaseModel):
    stops: list[Stop]
    total_minutes: int


ROUTE = {"stops": [{"name": "Louvre", "minutes": 90}], "total_minutes": 90}


async def test_a_typed_agent_answers_with_its_output_in_structured_content(
    dev_env: WorkflowEnvironment,
) -> None:
    """`output`, typed by the agent's output schema, in the tool's outputSchema and in each
    answer (one run per call, and a thread), validated by the SDK's client against it. The
    first reply of each does not validate: the run sends it back, and its retry answers."""
    replies = ["not json", json.dumps(ROUTE)]
    single = Agent("route-planner", model=ScriptedModel(new_id(), replies), output_type=Route)
    chat = Agent("route-chat", model=ScriptedModel(new_id(), replies), output_type=Route)
    thread = new_id()
    async with agent_client(dev_env.client, single, chat) as (client, _):
        server = mcp_server([single, chat, *mcp_agents], client)
        async with mcp.Client(server, mode="legacy") as session:  # JSON-RPC, in this process
            tools = {t.name: t for t in (await session.list_tools()).tools}
            answer = await session.call_tool("route-planner", {"prompt": "plan a day"})
            replied = await session.call_tool(
                "route-chat", {"prompt": "plan a day", "thread_id": thread}
            )
            assert answer.structured_content is not None
            unfit = {**answer.structured_content, "output": {"stops": "none"}}
            with pytest.raises(RuntimeError, match="Invalid structured content"):
                await session.session.validate_tool_result(
                    "route-planner", CallToolResult(content=[], structured_content=unfit)
                )
        await client.cancel(thread)

    schema = tools["route-planner"].output_schema
    assert schema is not None and "output" in schema["required"]
    typed = schema["properties"]["output"]
    assert typed["required"] == ["stops", "total_minutes"]
    assert typed["properties"]["stops"]["items"] == {"$ref": "#/$defs/Stop"}
    assert schema["$defs"]["Stop"] == Stop.model_json_schema()
    plain = tools["echo"].output_schema
    assert plain is not None and "output" not in plain["properties"]
    for result in (answer, replied):
        assert not result.is_error, text(result)
        assert result.structured_content is not None
        assert result.structured_content["output"] == ROUTE
        assert json.loads(text(result)) == ROUTE
    assert replied.structured_content is not None
    assert replied.structured_content["outcome"] == "waiting_for_user"


def test_an_agent_the_module_lacks_is_one_line_on_stderr() -> None:
    argv = [str(BIN / "durable-agent"), "mcp-serve", AGENTS, "--agent", "echo", "--agent", "x"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error: {AGENTS} has no agent 'x' (it has: echo, looper, payer)\n"


RainyStop = create_model("Stop", name=(str, ...), rain_mm=(float, ...))
"""Another `Stop`: its schema's `$defs` name collides with `Route`'s."""
Forecast = create_model("Forecast", stops=(list[RainyStop], ...))  # type: ignore[valid-type]
FORECAST = {"stops": [{"name": "Louvre", "rain_mm": 0.5}]}


async def test_a_typed_agent_that_hands_off_answers_in_the_type_of_the_agent_that_ended(
    dev_env: WorkflowEnvironment,
) -> None:
    """A Route agent hands off to a Forecast agent, whose answer ends the run: the tool's
    outputSchema is the anyOf of both types (each `Stop` keeps its own definition), so the
    SDK's client accepts the Forecast. Before, the schema named Route only and the client
    refused the answer ("Invalid structured content")."""
    handoff = calls(("h1", "transfer_to_weather", {}))
    weather = Agent(
        "weather",
        model=ScriptedModel(new_id(), ["unused", json.dumps(FORECAST)]),
        output_type=Forecast,
    )
    planner = Agent(
        "planner", model=ScriptedModel(new_id(), [handoff]), output_type=Route, handoffs=[weather]
    )
    thread = new_id()
    async with agent_client(dev_env.client, planner) as (client, _):
        async with mcp.Client(mcp_server([planner], client), mode="legacy") as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            answer = await session.call_tool("planner", {"prompt": "plan a dry day"})
            replied = await session.call_tool(
                "planner", {"prompt": "plan a dry day", "thread_id": thread}
            )
            assert answer.structured_content is not None
            as_route = {**answer.structured_content, "output": ROUTE}
            await session.session.validate_tool_result(
                "planner", CallToolResult(content=[], structured_content=as_route)
            )
            neither = {**answer.structured_content, "output": {"stops": [{"name": "x"}]}}
            with pytest.raises(RuntimeError, match="Invalid structured content"):
                await session.session.validate_tool_result(
                    "planner", CallToolResult(content=[], structured_content=neither)
                )
        await client.cancel(thread)

    schema = tools["planner"].output_schema
    assert schema is not None and "output" in schema["required"]
    routes, forecasts = schema["properties"]["output"]["anyOf"]
    assert routes["properties"]["stops"]["items"] == {"$ref": "#/$defs/Stop"}
    assert forecasts["properties"]["stops"]["items"] == {"$ref": "#/$defs/Stop_2"}
    assert schema["$defs"]["Stop"] == Stop.model_json_schema()
    assert schema["$defs"]["Stop_2"] == RainyStop.model_json_schema()
    for result in (answer, replied):
        assert not result.is_error, text(result)
        assert result.structured_content is not None
        assert result.structured_content["agent"] == "weather"
        assert result.structured_content["output"] == FORECAST


async def test_a_typed_agent_that_may_hand_off_to_a_plain_agent_declares_output_optional(
    dev_env: WorkflowEnvironment,
) -> None:
    """An answer in plain text carries no `output`; a typed one does (`agent` says which)."""
    handoff = calls(("h1", "transfer_to_chat", {}))
    chat = Agent("chat", model=ScriptedModel(new_id(), ["unused", "It will rain."]))
    planner = Agent(
        "planner", model=ScriptedModel(new_id(), [handoff]), output_type=Route, handoffs=[chat]
    )
    async with (
        agent_client(dev_env.client, planner) as (client, _),
        mcp.Client(mcp_server([planner], client), mode="legacy") as session,
    ):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        answer = await session.call_tool("planner", {"prompt": "plan a day"})

    schema = tools["planner"].output_schema
    assert schema is not None and "output" not in schema["required"]
    assert schema["properties"]["output"]["required"] == ["stops", "total_minutes"]
    assert not answer.is_error and text(answer) == "It will rain."
    assert answer.structured_content is not None
    assert answer.structured_content["agent"] == "chat"
    assert "output" not in answer.structured_content


def test_merged_defs_rename_a_definition_that_refers_to_a_renamed_one() -> None:
    """Two `Route`s that differ only in the `Stop` they refer to: both names are renamed."""
    defs: dict[str, Any] = {}
    merge_defs(TypeAdapter(list[Route]).json_schema(), defs)
    RainyRoute = create_model("Route", stops=(list[RainyStop], ...), total_minutes=(int, ...))
    merged = merge_defs(TypeAdapter(list[RainyRoute]).json_schema(), defs)  # type: ignore[valid-type]

    assert merged["items"] == {"$ref": "#/$defs/Route_2"}
    assert defs["Route_2"]["properties"]["stops"]["items"] == {"$ref": "#/$defs/Stop_2"}
    assert defs["Route"]["properties"]["stops"]["items"] == {"$ref": "#/$defs/Stop"}
    assert defs["Stop_2"] == RainyStop.model_json_schema()

    again = merge_defs(TypeAdapter(list[RainyRoute]).json_schema(), defs)  # type: ignore[valid-type]
    assert again == merged, "a type merged under a new name before takes that name again"
    assert set(defs) == {"Route", "Stop", "Route_2", "Stop_2"}
