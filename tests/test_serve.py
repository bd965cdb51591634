"""`durable-agent serve` over real HTTP: the app on uvicorn on a loopback port (in this process,
so a test can look at its hub; and once as the real CLI subprocess), a worker serving
`tests.e2e_agents`, and `httpx` as the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from durable_agent import LiveEvent
from durable_agent.client import AgentClient
from durable_agent.serve import Hub, create_app, listen
from durable_agent.serve.app import Server, server
from durable_agent.serve.hub import READER_LINGER
from durable_agent.serve.sse import KEEPALIVE_SECONDS
from durable_agent.storage import data_converter
from durable_agent.wire import parse_cursor
from durable_agent.worker import ensure_search_attributes

from .conftest import agent_client, eventually
from .e2e_agents import RAMBLE, STREAMED_REPLY, chatter, clerk, echo, rambler, streamer
from .processes import BIN, ROOT, DevServer, free_port

TOKEN = "serve-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    url: str
    client: AgentClient
    hub: Hub
    http: httpx.AsyncClient


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[tuple[str, Server]]:
    """`app` on uvicorn (our `Server`) on a free loopback port, in this event loop: its URL,
    and the server (whose state names the connections it holds)."""
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    uvicorn_server = server(app)
    task = asyncio.create_task(uvicorn_server.serve(sockets=[sock]))

    async def started() -> bool:
        assert not task.done(), "uvicorn ended"
        return uvicorn_server.started

    await eventually(started, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}", uvicorn_server
    finally:
        uvicorn_server.should_exit = True
        await asyncio.wait_for(task, 30)


@asynccontextmanager
async def http_server(app: FastAPI) -> AsyncIterator[str]:
    """`app` served as `serving` does: its URL."""
    async with serving(app) as (url, _):
        yield url


@pytest.fixture(scope="module")
async def api(dev_env: WorkflowEnvironment) -> AsyncIterator[Api]:
    async with agent_client(dev_env.client, streamer, rambler, chatter, clerk, echo) as (
        client,
        _,
    ):
        app = create_app(client, token=TOKEN)
        async with (
            http_server(app) as url,
            httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as http,
        ):
            yield Api(url, client, app.state.hub, http)


@dataclass
class Sse:
    id: str
    event: str
    data: dict[str, Any]


async def read_sse(
    http: httpx.AsyncClient,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    until: Callable[[list[Sse]], bool] | None = None,
    first: asyncio.Event | None = None,
    seconds: float = 60,
) -> list[Sse]:
    """Every event of an SSE response until it ends or `until` says stop (bounded), comments
    left out; `first` is set when the first event has come."""
    events: list[Sse] = []

    async def read() -> None:
        async with http.stream("GET", path, headers=headers, params=params) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    continue
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if fields:
                    data = json.loads(fields["data"])
                    events.append(Sse(fields.get("id", ""), fields.get("event", "message"), data))
                    fields = {}
                    if first is not None:
                        first.set()
                    if until is not None and until(events):
                        return

    await asyncio.wait_for(read(), seconds)
    return events


def one_line_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"], body
    line: str = body["error"]
    assert line and "\n" not in line, line
    return line


def gist(item: dict[str, Any]) -> tuple[str, str]:
    """What an item says, without the times in it. Readers at different moments can see an
    event with different times: a `live` query may be answered from a workflow task that the
    server then fails to persist (seen under load, the dev server logging "Update workflow
    execution operation failed ... context canceled"), and the task's retry records it later."""
    return item["role"], str(item.get("kind") or item.get("content") or "")


async def start(api: Api, agent: str, prompt: str, **fields: Any) -> str:
    response = await api.http.post("/runs", json={"agent": agent, "prompt": prompt, **fields})
    assert response.status_code == 201, response.text
    workflow_id: str = response.json()["workflow_id"]
    return workflow_id


async def wait_for_state(api: Api, workflow_id: str, state: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal found
        found = (await api.http.get(f"/runs/{workflow_id}")).json()
        return bool(found.get("state")) and found["state"]["state"] == state

    await eventually(reached, f"{workflow_id} in state {state}")
    return found


async def result_of(api: Api, workflow_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = {}

    async def ended() -> bool:
        nonlocal answer
        response = await api.http.get(f"/runs/{workflow_id}/result")
        answer = response.json()
        return response.status_code == 200

    await eventually(ended, f"{workflow_id}'s result")
    return answer


# ------------------------------------------------------------------------------------ runs


async def test_start_a_run_and_read_it(api: Api) -> None:
    wf = await start(api, "streamer", "go")
    result = await result_of(api, wf)
    assert result["final_text"] == STREAMED_REPLY
    run = (await api.http.get(f"/runs/{wf}")).json()
    assert run["agent"] == "streamer" and run["execution_status"] == "completed"
    assert run["state"]["state"] == "completed" and run["state"]["turn"] == 1
    history = (await api.http.get(f"/runs/{wf}/history", params={"events": "llm"})).json()
    kinds = [i.get("kind") or i["role"] for i in history["items"]]
    assert kinds == ["user", "model_called", "assistant"] and history["done"]


async def test_a_start_retried_with_its_idempotency_key_starts_one_run(api: Api) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"agent": "chatter", "prompt": "once"}
    first = await api.http.post("/runs", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = await api.http.post("/runs", json=body, headers=key)
    assert again.status_code == 200 and again.json() == first.json()
    await result_of(api, first.json()["workflow_id"])
    late = await api.http.post("/runs", json=body, headers=key)  # after the run has ended
    assert late.status_code == 200 and late.json() == first.json()
    other = await api.http.post("/runs", json=body, headers={"Idempotency-Key": "another"})
    assert other.status_code == 201 and other.json() != first.json()


async def test_list_runs_by_status_and_agent(api: Api) -> None:
    waiting = await start(api, "clerk", "pay")
    done = await start(api, "chatter", "hi")
    await result_of(api, done)

    async def listed(status: str, agent: str, wf: str) -> bool:
        params = {"status": status, "agent": agent, "limit": "1000"}
        response = await api.http.get("/runs", params=params)
        assert response.status_code == 200, response.text
        runs = response.json()
        assert all(r["status"] == status and r["agent"] == agent for r in runs), runs
        starts = [r["start_time"] for r in runs]
        assert starts == sorted(starts, reverse=True)  # newest first
        return wf in [r["workflow_id"] for r in runs]

    await eventually(lambda: listed("waiting_for_approval", "clerk", waiting), "the waiting run")
    await eventually(lambda: listed("completed", "chatter", done), "the completed run")
    assert not await listed("completed", "clerk", waiting)
    line = one_line_error(await api.http.get("/runs", params={"status": "asleep"}), 422)
    assert line.startswith("query.status: Input should be 'running'"), line
    await api.http.post(f"/runs/{waiting}/cancel")


async def test_approve_with_digest_resolve_then_a_second_approval_is_refused(api: Api) -> None:
    wf = await start(api, "clerk", "pay and ask")
    await wait_for_state(api, wf, "waiting_for_approval")
    pending = {p["tool_call_id"]: p for p in (await api.http.get(f"/runs/{wf}/pending")).json()}
    assert {k: p["kind"] for k, p in pending.items()} == {"w1": "approval", "q1": "external"}
    line = one_line_error(await api.http.get(f"/runs/{wf}/result"), 409)
    assert line == f"run {wf} is still running"

    stale = await api.http.post(f"/runs/{wf}/calls/w1/approve", json={"digest": "0" * 64})
    assert "digest" in one_line_error(stale, 409)
    approved = await api.http.post(
        f"/runs/{wf}/calls/w1/approve",
        json={"digest": pending["w1"]["digest"], "reason": "fine"},
        headers={"Idempotency-Key": f"approve-{wf}"},
    )
    assert approved.status_code == 200 and approved.json()["accepted"], approved.text
    resolved = await api.http.post(
        f"/runs/{wf}/calls/q1/resolve", json={"content": {"ok": True}, "is_error": False}
    )
    assert resolved.status_code == 200, resolved.text
    result = await result_of(api, wf)
    assert result["final_text"] == "all handled"
    tools = {m["tool_call_id"]: m["content"] for m in result["messages"] if m["role"] == "tool"}
    assert tools == {"w1": "wired 5", "q1": '{"ok":true}'}

    again = await api.http.post(f"/runs/{wf}/calls/w1/approve", json={})
    assert one_line_error(again, 409) == f"run {wf} has ended"


async def test_a_second_decision_on_an_open_run_is_refused_as_one_line(api: Api) -> None:
    wf = await start(api, "clerk", "pay")
    await wait_for_state(api, wf, "waiting_for_approval")
    rejected = await api.http.post(f"/runs/{wf}/calls/w1/reject", json={"reason": "no"})
    assert rejected.status_code == 200, rejected.text
    again = await api.http.post(f"/runs/{wf}/calls/w1/approve")  # no body: allowed
    line = one_line_error(again, 409)
    assert line.startswith("refused: ") and "w1" in line, line
    unknown = await api.http.post(f"/runs/{wf}/calls/nope/resolve", json={"content": "x"})
    assert one_line_error(unknown, 409).startswith("refused: ")
    await api.http.post(f"/runs/{wf}/cancel")


async def test_say_and_an_idempotency_key_that_applies_once(api: Api) -> None:
    wf = await start(api, "echo", "hello", conversation=True)
    await wait_for_state(api, wf, "waiting_for_user")
    key = {"Idempotency-Key": str(uuid.uuid4())}
    for _ in range(2):
        said = await api.http.post(f"/runs/{wf}/messages", json={"content": "again"}, headers=key)
        assert said.status_code == 200 and said.json()["accepted"], said.text

    async def answered() -> bool:
        history = (await api.http.get(f"/runs/{wf}/history")).json()
        return "echo: again" in [i.get("content") for i in history["items"]]

    await eventually(answered, "the echo of the message")
    await wait_for_state(api, wf, "waiting_for_user")
    history = (await api.http.get(f"/runs/{wf}/history")).json()
    users = [i["content"] for i in history["items"] if i.get("role") == "user"]
    assert users == ["hello", "again"]  # the retried message once
    cancelled = await api.http.post(f"/runs/{wf}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert (await result_of(api, wf))["outcome"] == "cancelled"


async def test_a_thread_id_starts_a_conversation_then_continues_it(api: Api) -> None:
    thread = f"thread-{uuid.uuid4()}"
    first = await api.http.post(
        "/runs", json={"agent": "chatter", "prompt": "one", "thread_id": thread}
    )
    assert first.status_code == 200, first.text
    assert first.json()["workflow_id"] == thread and first.json()["detail"]
    await wait_for_state(api, thread, "waiting_for_user")
    second = await api.http.post(
        "/runs", json={"agent": "chatter", "prompt": "two", "thread_id": thread}
    )
    assert second.status_code == 200 and second.json()["run_id"] == first.json()["run_id"]

    async def both_answered() -> bool:
        history = (await api.http.get(f"/runs/{thread}/history")).json()
        said = [i.get("content") for i in history["items"] if i.get("role") == "assistant"]
        return said == ["echo: one", "echo: two"]

    await eventually(both_answered, "both messages answered")
    await api.http.post(f"/runs/{thread}/cancel")


async def test_interrupt_cuts_a_streaming_reply_off_then_cancel_ends_the_run(api: Api) -> None:
    wf = await start(api, "rambler", "Tell me a story", conversation=True)

    async def streaming() -> bool:
        return any(e.delta is not None for e in api.hub.kept(wf))

    seen = asyncio.create_task(read_sse(api.http, f"/runs/{wf}/events"))
    await eventually(streaming, "the story streaming")
    interrupted = await api.http.post(f"/runs/{wf}/interrupt", json={"content": "Stop, please"})
    assert interrupted.status_code == 200, interrupted.text
    await wait_for_state(api, wf, "waiting_for_user")
    cancelled = await api.http.post(f"/runs/{wf}/cancel")
    assert cancelled.status_code == 202
    events = await seen
    items = [e.data["item"] for e in events if e.event == "item"]
    cut = [i for i in items if i.get("kind") == "interrupted"]
    partial = cut[0]["data"]["partial"]
    assert len(cut) == 1 and partial.startswith("story0") and RAMBLE.startswith(partial)
    said = [i["content"] for i in items if i.get("role") == "assistant"]
    assert said == ["Bye."]  # the cut-off story never became the model's message
    assert events[-1].event == "end" and events[-1].data["state"] == "cancelled"
    ended = await api.http.post(f"/runs/{wf}/interrupt", json={"content": "more"})
    assert one_line_error(ended, 409) == f"run {wf} has ended"


# ---------------------------------------------------------------------------------- errors


async def test_unknown_runs_are_404_and_malformed_input_is_one_line(api: Api) -> None:
    for method, path, body in [
        ("GET", "/runs/no-such-run", None),
        ("GET", "/runs/no-such-run/pending", None),
        ("GET", "/runs/no-such-run/events", None),
        ("POST", "/runs/no-such-run/messages", {"content": "hi"}),
        ("POST", "/runs/no-such-run/calls/c1/approve", {}),
    ]:
        response = await api.http.request(method, path, json=body)
        assert one_line_error(response, 404) == "no run with id no-such-run", path

    missing = await api.http.post("/runs", json={"agent": "echo", "colour": "red"})
    assert one_line_error(missing, 422) == (
        "body.prompt: Field required; body.colour: Extra inputs are not permitted"
    )
    broken = await api.http.post(
        "/runs", content=b'{"agent": ', headers={"Content-Type": "application/json"}
    )
    assert one_line_error(broken, 422).startswith("body: not valid JSON (")
    turns = await api.http.post("/runs", json={"agent": "echo", "prompt": "x", "max_turns": 0})
    assert one_line_error(turns, 422) == (
        "body.max_turns: Input should be greater than or equal to 1"
    )
    wf = await start(api, "echo", "hi")
    cursor = await api.http.get(f"/runs/{wf}/events", params={"after": "x.y"})
    assert one_line_error(cursor, 400).startswith("bad cursor 'x.y'")
    assert one_line_error(await api.http.get("/nowhere"), 404) == "Not Found"


async def test_a_hub_reader_passes_its_error_to_its_subscribers(api: Api) -> None:
    """The route answers 404 before it subscribes; the hub itself reports what its reader met,
    and the next subscriber gets a reader of its own (the run may exist by then)."""
    for attempt in (1, 2):
        async with api.hub.subscribe("no-such-run") as subscription:
            with pytest.raises(RPCError) as failed:
                await asyncio.wait_for(subscription.next_batch(), 30)
        assert failed.value.status is RPCStatusCode.NOT_FOUND
        assert api.hub.readers_started["no-such-run"] == attempt
        assert not api.hub.reading("no-such-run")


async def test_the_token_guards_every_route_but_health_and_docs(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as anonymous:
        line = one_line_error(await anonymous.get("/runs"), 401)
        assert line == "unauthorized: send Authorization: Bearer <token>"
        wrong = await anonymous.get("/runs", headers={"Authorization": "Bearer nope"})
        assert one_line_error(wrong, 401) == "unauthorized: wrong bearer token"
        # Before the body is read: a malformed body without a token is still a 401.
        assert (await anonymous.post("/runs", content=b"{")).status_code == 401
        assert (await anonymous.get("/runs", headers=AUTH)).status_code == 200
        assert (await anonymous.get("/healthz")).json() == {"ok": True}
        schema = (await anonymous.get("/openapi.json")).json()
        assert (await anonymous.get("/docs")).status_code == 200
        # The events route, and only it, also takes the token in the URL (for EventSource).
        wf = await start(api, "echo", "hi")
        await result_of(api, wf)
        events = await read_sse(anonymous, f"/runs/{wf}/events", params={"access_token": TOKEN})
        assert events[-1].event == "end"
        denied = await anonymous.get(f"/runs/{wf}", params={"access_token": TOKEN})
        assert denied.status_code == 401
    paths = {path: sorted(ops) for path, ops in schema["paths"].items() if path.startswith("/runs")}
    assert paths == {
        "/runs": ["get", "post"],
        "/runs/{workflow_id}": ["get"],
        "/runs/{workflow_id}/pending": ["get"],
        "/runs/{workflow_id}/history": ["get"],
        "/runs/{workflow_id}/result": ["get"],
        "/runs/{workflow_id}/events": ["get"],
        "/runs/{workflow_id}/messages": ["post"],
        "/runs/{workflow_id}/interrupt": ["post"],
        "/runs/{workflow_id}/cancel": ["post"],
        "/runs/{workflow_id}/calls/{tool_call_id}/approve": ["post"],
        "/runs/{workflow_id}/calls/{tool_call_id}/reject": ["post"],
        "/runs/{workflow_id}/calls/{tool_call_id}/resolve": ["post"],
    }
    start_schema = schema["components"]["schemas"]["StartRun"]
    assert set(start_schema["properties"]) >= {"agent", "prompt", "thread_id", "max_turns"}
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


async def test_a_kept_alive_connection_answers_without_a_delayed_ack(api: Api) -> None:
    """Regression: `listen`'s socket named no protocol, so asyncio left Nagle on for the
    connections it accepted, and every response after a connection's first waited for the
    client's delayed ACK: 44 ms each on Linux. Asserted as its cause, not by the clock (which a
    busy machine breaks): the connection is kept alive and has TCP_NODELAY."""
    async with (
        serving(create_app(api.client, token=TOKEN)) as (url, uvicorn_server),
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        for _ in range(20):
            assert (await http.get("/healthz")).status_code == 200
        state = uvicorn_server.server_state
        assert (len(state.connections), state.total_requests) == (1, 20)
        [connection] = state.connections
        accepted = connection.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


# ------------------------------------------------------------------------ server-sent events


async def test_sse_reads_to_the_end_and_a_dropped_client_resumes_exactly(api: Api) -> None:
    """The rambler streams its story until interrupted, so the client drops mid-reply."""
    wf = await start(api, "rambler", "Tell me a story")
    path = f"/runs/{wf}/events"
    whole = asyncio.create_task(read_sse(api.http, path))
    quiet = asyncio.create_task(read_sse(api.http, path, params={"deltas": "false"}))
    # A client that drops in the middle of the reply, then reconnects as EventSource does.
    cut = await read_sse(
        api.http, path, until=lambda seen: sum(e.event == "delta" for e in seen) == 10
    )
    reconnected = asyncio.Event()
    resumed = asyncio.create_task(
        read_sse(api.http, path, headers={"Last-Event-ID": cut[-1].id}, first=reconnected)
    )
    # Back before the reply ends: once it has, its deltas are gone (the message holds them).
    await asyncio.wait_for(reconnected.wait(), 30)
    await api.http.post(f"/runs/{wf}/interrupt", json={"content": "Stop, please"})
    everything, rest = await whole, await resumed
    kinds = [e.event for e in everything]
    assert kinds[-1] == "end" and kinds.count("end") == 1
    assert everything[-1].data["state"] == "completed"
    assert all(e.id == e.data["id"] and e.event == e.data["type"] for e in everything)
    deltas = [e for e in everything if e.event == "delta"]
    streamed = "".join(e.data["delta"]["text"] for e in deltas)
    assert len(deltas) >= 10 and RAMBLE.startswith(streamed), streamed
    assert [e.data for e in cut + rest] == [e.data for e in everything]
    assert rest[0].event == "delta"  # resumed mid-reply
    assert [e.data for e in await quiet] == [e.data for e in everything if e.event != "delta"]
    assert api.hub.readers_started[wf] == 1  # the reconnect found the reader still there

    # Once the run has ended and nobody watches, a reconnect reads the run afresh: the reply's
    # deltas are gone (its message holds the text), the rest comes after the cursor as before.
    late = await read_sse(api.http, path, params={"after": cut[-1].id})
    items_after_cut = [gist(e.data["item"]) for e in rest if e.event == "item"]
    assert [gist(e.data["item"]) for e in late if e.event == "item"] == items_after_cut
    assert [e.event for e in late if e.event != "item"] == ["state", "end"]
    assert api.hub.readers_started[wf] == 2


async def test_twenty_sse_clients_of_one_run_cost_one_reader(api: Api) -> None:
    wf = await start(api, "clerk", "pay and ask")
    await wait_for_state(api, wf, "waiting_for_approval")
    readers = [asyncio.create_task(read_sse(api.http, f"/runs/{wf}/events")) for _ in range(20)]

    async def all_subscribed() -> bool:
        return api.hub.subscribers(wf) == 20

    await eventually(all_subscribed, "20 subscribers")
    assert api.hub.readers_started[wf] == 1
    pending = {p["tool_call_id"]: p for p in (await api.http.get(f"/runs/{wf}/pending")).json()}
    digest = pending["w1"]["digest"]
    await api.http.post(f"/runs/{wf}/calls/w1/approve", json={"digest": digest})
    await api.http.post(f"/runs/{wf}/calls/q1/resolve", json={"content": "yes"})
    streams = await asyncio.gather(*readers)
    first = [(e.id, e.event, e.data) for e in streams[0]]
    assert first[-1][1] == "end" and first[-1][2]["state"] == "completed"
    assert all([(e.id, e.event, e.data) for e in s] == first for s in streams)
    assert api.hub.readers_started[wf] == 1
    assert api.hub.subscribers(wf) == 0


async def test_a_reader_drops_a_calls_deltas_once_the_call_has_ended(api: Api) -> None:
    """As the workflow does: what the hub keeps is what the `live` query still holds. (The
    rambler streams for 20 s unless interrupted: the test sees it stream however slowly the
    machine replays the run.)"""
    wf = await start(api, "rambler", "Tell me a story", conversation=True)
    seen: list[LiveEvent] = []

    async def watch() -> None:
        async with api.hub.subscribe(wf) as subscription:
            async for event in subscription:
                seen.append(event)

    def kept_turns() -> set[int]:
        return {e.delta.turn for e in api.hub.kept(wf) if e.delta is not None}

    async def streaming() -> bool:
        return kept_turns() == {1}

    watcher = asyncio.create_task(watch())
    await eventually(streaming, "the story streaming")
    await api.http.post(f"/runs/{wf}/interrupt", json={"content": "Stop, please"})
    await wait_for_state(api, wf, "waiting_for_user")  # it said "Bye." (turn 2)

    async def answered() -> bool:
        return any(e.item is not None and e.item.role == "assistant" for e in seen)

    await eventually(answered, "the answer in the watcher's stream")
    assert kept_turns() == set()
    assert {e.delta.turn for e in seen if e.delta is not None} >= {1}  # yet it streamed live
    # A subscriber from the start now gets what `AgentClient.events` gives: no delta.
    direct: list[LiveEvent] = []
    stream = api.client.events(wf)
    assert isinstance(stream, AsyncGenerator)
    async with aclosing(stream):
        async for event in stream:
            direct.append(event)
            if event.type == "state":  # the end of its first page
                break
    async with api.hub.subscribe(wf) as late:
        from_hub = await late.next_batch(0)
    assert "delta" not in [e.type for e in from_hub + direct]
    items = [gist(e.item.model_dump()) for e in direct if e.item is not None]
    assert [gist(e.item.model_dump()) for e in from_hub if e.item is not None] == items
    # A cursor that names only the items (what comes next, and the reply streaming now from
    # its start) lets no earlier item through, though theirs carry the story's delta offsets.
    assert any(parse_cursor(e.id)[1] > 0 for e in from_hub if e.item is not None)
    async with api.hub.subscribe(wf, f"{len(items)}.0") as following:
        assert [e.type for e in await following.next_batch(0)] == ["state"]
    await api.http.post(f"/runs/{wf}/cancel")
    await asyncio.wait_for(watcher, 30)
    assert seen[-1].type == "end"


@pytest.mark.slow  # READER_LINGER (10 s) and then some
async def test_a_reader_lingers_after_its_last_subscriber_then_stops(api: Api) -> None:
    wf = await start(api, "clerk", "pay")
    await wait_for_state(api, wf, "waiting_for_approval")
    path = f"/runs/{wf}/events"
    first = await read_sse(api.http, path, until=lambda seen: seen[-1].event == "state")

    async def left() -> bool:
        return api.hub.subscribers(wf) == 0

    await eventually(left, "the client's disconnect noticed")
    assert api.hub.reading(wf)
    # A client back within the linger resumes from the same reader.
    before_leaving = time.monotonic()
    again = await read_sse(
        api.http, path, headers={"Last-Event-ID": first[-1].id}, until=lambda seen: True
    )
    assert again[0].event == "state" and api.hub.readers_started[wf] == 1
    await eventually(left, "the second disconnect noticed")
    assert api.hub.reading(wf)

    async def stopped() -> bool:
        return not api.hub.reading(wf)

    # The bound is the test's: a busy machine may be late to stop the reader, never early.
    await eventually(stopped, "the reader to stop", READER_LINGER + 60)
    # The client left after `before_leaving`, so the reader read on for at least the linger
    # (a lower bound only: load can only lengthen it).
    assert time.monotonic() - before_leaving >= READER_LINGER
    await api.http.post(f"/runs/{wf}/cancel")


# ------------------------------------------------------------------------------ the real CLI


@pytest.mark.slow  # about 25 s: a CLI process, and a stream quiet for a keep-alive
async def test_cli_serve_then_sigterm_with_an_sse_stream_open(
    api: Api, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """`durable-agent serve` as a user runs it (token from the environment) for a worker
    elsewhere; SIGTERM ends it promptly although an SSE client still listens."""
    port = free_port()
    address = dev_env.client.service_client.config.target_host
    stderr = tmp_path / "serve.stderr"
    argv = [
        *(str(BIN / "durable-agent"), "serve", "--port", str(port)),
        *("--address", address, "--task-queue", api.client.task_queue),
    ]
    env = {**os.environ, "DURABLE_AGENT_SERVE_TOKEN": TOKEN}
    with stderr.open("wb") as err:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=err)  # noqa: ASYNC220
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as http:

            async def healthy() -> bool:
                assert process.poll() is None, stderr.read_text()
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, "durable-agent serve to answer")
            assert "bearer token required" in stderr.read_text()
            started = await http.post("/runs", json={"agent": "streamer", "prompt": "go"})
            assert started.status_code == 201, started.text
            wf = started.json()["workflow_id"]
            done = await http.get(f"/runs/{wf}/result")
            while done.status_code == 409:
                await asyncio.sleep(0.2)
                done = await http.get(f"/runs/{wf}/result")
            assert done.json()["final_text"] == STREAMED_REPLY
            async with httpx.AsyncClient(base_url=url, timeout=60) as anonymous:
                assert (await anonymous.get(f"/runs/{wf}")).status_code == 401

            waiting = await http.post("/runs", json={"agent": "clerk", "prompt": "pay"})
            path = f"/runs/{waiting.json()['workflow_id']}/events"
            asked = time.monotonic()
            async with http.stream("GET", path) as stream:
                lines = aiter(stream.aiter_lines())
                # The run waits for an approval: the stream goes quiet but for keep-alives.
                bound = KEEPALIVE_SECONDS + 60  # the test's bound, not the server's
                while await asyncio.wait_for(anext(lines), bound) != ": keep-alive":
                    pass
                # Not sent at once: the server's quiet began after the request was sent (a
                # lower bound only: load can only lengthen it).
                assert time.monotonic() - asked >= KEEPALIVE_SECONDS
                process.send_signal(signal.SIGTERM)
                rest = [line async for line in lines]  # the server ends the stream
                # ...and then exits, though the stream was open (uvicorn alone waits for
                # every response to end: for ever, with an SSE client). Once shut down, uvicorn
                # raises the signal it caught again: the exit is the SIGTERM's.
                assert process.wait(timeout=60) == -signal.SIGTERM, stderr.read_text()
            assert "event: end" not in rest  # cut short: the client reconnects elsewhere
            await api.client.cancel(waiting.json()["workflow_id"])  # the server is gone
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert "Traceback" not in stderr.read_text(), stderr.read_text()


@pytest.mark.slow  # 30 s: the server's wait for a worker to answer a query
async def test_a_run_no_worker_serves_is_described_and_its_queries_are_a_504(
    dev_env: WorkflowEnvironment,
) -> None:
    client = AgentClient(dev_env.client, f"nobody-polls-{uuid.uuid4()}")
    app = create_app(client)
    async with http_server(app) as url, httpx.AsyncClient(base_url=url, timeout=90) as http:
        started = await http.post("/runs", json={"agent": "echo", "prompt": "anyone?"})
        wf = started.json()["workflow_id"]
        run, pending = await asyncio.gather(
            http.get(f"/runs/{wf}"), http.get(f"/runs/{wf}/pending")
        )
        assert run.status_code == 200, run.text
        described = run.json()
        assert described["execution_status"] == "running" and described["state"] is None
        assert described["state_error"].startswith(f"run {wf} did not answer in time")
        line = one_line_error(pending, 504)
        assert line.endswith("its queries and updates need a worker polling its task queue")
        await dev_env.client.get_workflow_handle(wf).terminate("no worker")


@pytest.mark.slow  # about 15 s: the SDK retries an unreachable server for 10 s
async def test_temporal_unreachable_is_a_503(tmp_path: Path) -> None:
    temporal = DevServer(tmp_path / "temporal.db")
    await temporal.start()
    try:
        client = await Client.connect(temporal.address, data_converter=data_converter())
        await ensure_search_attributes(client)
        app = create_app(AgentClient(client))
        async with http_server(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
            assert one_line_error(await http.get("/runs/nope"), 404) == "no run with id nope"
            temporal.stop()
            line = one_line_error(await http.get("/runs/nope"), 503)
            assert line.startswith("Temporal is unreachable: "), line
    finally:
        temporal.stop()
