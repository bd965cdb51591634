"""AG-UI (`POST /agents/{agent}/agui`) as an unchanged AG-UI client meets it: real HTTP on
loopback (uvicorn), a dev server and a worker; every event we emit parsed with the
`ag-ui-protocol` package's own models and checked against the protocol's ordering rules.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
from ag_ui.core import (
    Event,
    EventType,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    TextMessageContentEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
    UserMessage,
)
from pydantic import BaseModel, TypeAdapter
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    Budget,
    RunState,
    ScriptedModel,
    ToolCall,
    tool,
)
from durable_agent.client import AgentClient
from durable_agent.serve.app import create_app
from durable_agent.wire import arguments_digest

from .conftest import agent_client, new_id
from .e2e_agents import clerk
from .test_serve import http_server

EVENTS: TypeAdapter[Event] = TypeAdapter(Event)

FIRST = "Durable runs keep their place when workers die, so nothing is lost."
SECOND = "Ask me anything else you like."
teller = Agent(
    "agui-teller",
    model=ScriptedModel("agui-teller", [FIRST, SECOND], chunk_delay=0.03),
)
slow = Agent(
    "agui-slow",
    model=ScriptedModel("agui-slow", ["word " * 200], chunk_delay=0.05),
)


@tool
def look() -> str:
    """Look around."""
    return "nothing here"


budgeted = Agent(
    "agui-budgeted",
    model=ScriptedModel(
        "agui-budgeted",
        [
            AssistantMessage(
                content="Let me look.", tool_calls=[ToolCall(id="l1", name="look", arguments="{}")]
            ),
            "never said: the budget stops the run first",
        ],
    ),
    tools=[look],
    budget=Budget(max_model_calls=1),
)


@asynccontextmanager
async def agui_server(env: WorkflowEnvironment) -> AsyncIterator[tuple[str, AgentClient]]:
    # Cached, as deployed: see PAGE_WORKER in test_operator_page.py.
    async with agent_client(  # noqa: SIM117
        env.client, teller, slow, clerk, budgeted, max_cached_workflows=100
    ) as (client, _):
        async with http_server(create_app(client)) as url:
            yield url, client


def run_input(thread: str, messages: list[tuple[str, str]], **fields: Any) -> dict[str, Any]:
    """A `RunAgentInput` as an AG-UI client sends it (camelCase JSON)."""
    built = RunAgentInput(
        thread_id=thread,
        run_id=f"run-{uuid.uuid4().hex[:8]}",
        messages=[
            UserMessage(id=f"m{i}", content=text)
            if role == "user"
            else {"id": f"m{i}", "role": role, "content": text}
            for i, (role, text) in enumerate(messages)
        ],
        **fields,
    )
    return built.model_dump(mode="json", by_alias=True)


async def post_run(
    url: str, agent: str, body: dict[str, Any], *, on_event: Any = None
) -> list[Event]:
    """POST the input and read the SSE stream to its end, parsing each event (bounded)."""
    events: list[Event] = []

    async def read() -> None:
        async with (
            httpx.AsyncClient(timeout=60) as http,
            http.stream(
                "POST",
                f"{url}/agents/{agent}/agui",
                json=body,
                headers={"Accept": "text/event-stream"},
            ) as response,
        ):
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    event = EVENTS.validate_json(line.removeprefix("data: "))
                    events.append(event)
                    if on_event is not None:
                        await on_event(event)

    await asyncio.wait_for(read(), 60)
    check_sequence(events)
    return events


def check_sequence(events: list[Event]) -> None:
    """The protocol's ordering rules a consumer enforces: one run, opened first and closed
    last; messages and tool calls opened before they continue and closed before the end."""
    types = [e.type for e in events]
    assert types[0] is EventType.RUN_STARTED, types
    assert types[-1] in (EventType.RUN_FINISHED, EventType.RUN_ERROR), types
    assert EventType.RUN_STARTED not in types[1:], types
    assert not {EventType.RUN_FINISHED, EventType.RUN_ERROR} & set(types[:-1]), types
    open_messages: set[str] = set()
    open_calls: set[str] = set()
    for event in events:
        kind, data = event.type, event.model_dump()
        if kind is EventType.TEXT_MESSAGE_START:
            assert data["message_id"] not in open_messages, event
            open_messages.add(data["message_id"])
        elif kind in (EventType.TEXT_MESSAGE_CONTENT, EventType.TEXT_MESSAGE_END):
            assert data["message_id"] in open_messages, event
            if kind is EventType.TEXT_MESSAGE_END:
                open_messages.discard(data["message_id"])
        elif kind is EventType.TOOL_CALL_START:
            assert data["tool_call_id"] not in open_calls, event
            open_calls.add(data["tool_call_id"])
        elif kind in (EventType.TOOL_CALL_ARGS, EventType.TOOL_CALL_END):
            assert data["tool_call_id"] in open_calls, event
            if kind is EventType.TOOL_CALL_END:
                open_calls.discard(data["tool_call_id"])
    if types[-1] is EventType.RUN_FINISHED:
        assert not open_messages and not open_calls, (open_messages, open_calls)


def assistant_text(events: list[Event]) -> list[str]:
    """Each assistant message's text, assembled from its deltas as a consumer does."""
    texts: dict[str, str] = {}
    for event in events:
        if event.type is EventType.TEXT_MESSAGE_START and event.role in (None, "assistant"):
            texts[event.message_id] = ""
        elif isinstance(event, TextMessageContentEvent) and event.message_id in texts:
            texts[event.message_id] += event.delta
    return list(texts.values())


async def test_a_thread_is_one_durable_conversation_streamed_turn_by_turn(
    dev_env: WorkflowEnvironment,
) -> None:
    async with agui_server(dev_env) as (url, client):
        thread = new_id()
        first = await post_run(url, "agui-teller", run_input(thread, [("user", "hi")]))
        # The client sends the whole conversation; only its last message is new.
        second = await post_run(
            url,
            "agui-teller",
            run_input(thread, [("user", "hi"), ("assistant", FIRST), ("user", "and?")]),
        )
        history = await client.history(thread)
        await client.cancel(thread)
    # The reply streamed in pieces, and they add up to the message the run recorded.
    contents = [e for e in first if isinstance(e, TextMessageContentEvent)]
    assert len(contents) > 3, contents
    assert assistant_text(first) == [FIRST]
    assert assistant_text(second) == [SECOND]  # the second turn only, not the first again
    for events in (first, second):
        finished = events[-1]
        assert isinstance(finished, RunFinishedEvent), finished
        assert finished.outcome is None  # success: the run waits for the user again
        assert finished.usage and finished.usage[0].output_tokens, finished.usage
        assert finished.thread_id == thread
        assert finished.result is None  # a plain text agent's answer is its message
    users = [i.content for i in history.items if getattr(i, "role", None) == "user"]
    assert users == ["hi", "and?"]  # each message once, in the one durable run


class Forecast(BaseModel):
    city: str
    celsius: float


async def test_a_typed_agents_turn_finishes_with_its_typed_answer_as_result(
    dev_env: WorkflowEnvironment,
) -> None:
    """RUN_FINISHED's `result` is the turn's answer as the agent's output type; the first turn's
    first reply does not validate, so the run sends it back and the retry is the result."""
    replies = [
        "sunny, I think",
        '{"city": "Oslo", "celsius": 4}',
        '{"city": "Rome", "celsius": 18}',
    ]
    agent = Agent("agui-typed", model=ScriptedModel(new_id(), replies), output_type=Forecast)
    async with agent_client(dev_env.client, agent, max_cached_workflows=100) as (client, _):  # noqa: SIM117
        async with http_server(create_app(client)) as url:
            thread = new_id()
            first = await post_run(url, "agui-typed", run_input(thread, [("user", "Oslo?")]))
            asked = [("user", "Oslo?"), ("assistant", replies[1]), ("user", "Rome?")]
            second = await post_run(url, "agui-typed", run_input(thread, asked))
            await client.cancel(thread)
    results = []
    for events in (first, second):
        finished = events[-1]
        assert isinstance(finished, RunFinishedEvent), events
        assert finished.outcome is None
        results.append(finished.result)
    assert results == [{"city": "Oslo", "celsius": 4.0}, {"city": "Rome", "celsius": 18.0}]


async def test_a_turn_ends_even_when_it_passes_between_two_reads_of_an_idle_stream(
    dev_env: WorkflowEnvironment,
) -> None:
    """Found by measuring: between turns the app's `Hub` reader lingers, reading once a second;
    a fast turn (a worker with its cache, as deployed) can start and end between two reads,
    so the stream shows no change of state, only the new messages. Each turn must still end,
    with its own answer and nothing from before."""
    replies = {f"q{n}": f"answer {n}" for n in range(4)}
    agent = Agent(
        "agui-quick",
        model=ScriptedModel(new_id(), lambda r: replies[str(r.messages[-1].content)]),
    )
    async with (
        agent_client(dev_env.client, agent, max_cached_workflows=100) as (client, _),
        http_server(create_app(client)) as url,
    ):
        thread, messages, answers = new_id(), [], []
        for n in range(4):
            messages.append(("user", f"q{n}"))
            events = await post_run(url, "agui-quick", run_input(thread, messages))
            answers.append(assistant_text(events))
            messages.append(("assistant", f"answer {n}"))
            await asyncio.sleep(3)  # the reader goes idle, and lingers
        await client.cancel(thread)
    assert answers == [[f"answer {n}"] for n in range(4)]


async def test_approvals_are_interrupts_and_resume_entries_answer_them(
    dev_env: WorkflowEnvironment,
) -> None:
    async with agui_server(dev_env) as (url, client):
        thread = new_id()
        asked = await post_run(url, "clerk", run_input(thread, [("user", "wire 5, then ask")]))
        finished = asked[-1]
        assert isinstance(finished, RunFinishedEvent)
        assert isinstance(finished.outcome, RunFinishedInterruptOutcome), finished
        interrupts = {i.id: i for i in finished.outcome.interrupts}
        started = [e.tool_call_id for e in asked if isinstance(e, ToolCallStartEvent)]
        # A wrong digest is refused before any event: nothing was decided.
        wrong = run_input(
            thread,
            [("user", "wire 5, then ask")],
            resume=[{"interruptId": "w1", "status": "resolved", "payload": {"approved": True}}],
        )
        wrong["resume"][0]["payload"]["digest"] = "0" * 64
        async with httpx.AsyncClient(timeout=30) as http:
            refused = await http.post(f"{url}/agents/clerk/agui", json=wrong)
        still = await client.pending(thread)
        digest = interrupts["w1"].metadata["digest"] if interrupts["w1"].metadata else None
        resumed = await post_run(
            url,
            "clerk",
            run_input(
                thread,
                [("user", "wire 5, then ask")],
                resume=[
                    {
                        "interruptId": "w1",
                        "status": "resolved",
                        "payload": {"approved": True, "digest": digest},
                    },
                    {"interruptId": "q1", "status": "resolved", "payload": {"content": "ok!"}},
                ],
            ),
        )
        status = await client.status(thread)
        await client.cancel(thread)
    assert started == ["w1", "q1"]
    assert set(interrupts) == {"w1", "q1"}
    assert interrupts["w1"].reason == "approval" and interrupts["w1"].tool_call_id == "w1"
    assert interrupts["q1"].reason == "external"
    assert digest == arguments_digest("wire_money", '{"amount": 5}')
    assert interrupts["w1"].response_schema is not None
    assert "approved" in interrupts["w1"].response_schema["properties"]
    assert refused.status_code == 409 and "digest" in refused.text, refused.text
    assert {p.tool_call_id for p in still} == {"w1", "q1"}
    results = {e.tool_call_id: e.content for e in resumed if isinstance(e, ToolCallResultEvent)}
    assert results == {"w1": "wired 5", "q1": "ok!"}
    assert assistant_text(resumed) == ["all handled"]
    # Only what followed the answers: the calls were shown by the run that asked.
    assert not [e for e in resumed if isinstance(e, ToolCallStartEvent)]
    last = resumed[-1]
    assert isinstance(last, RunFinishedEvent) and last.outcome is None
    assert status.state is RunState.WAITING_FOR_USER


async def test_a_cancelled_entry_rejects_the_approval(dev_env: WorkflowEnvironment) -> None:
    async with agui_server(dev_env) as (url, client):
        thread = new_id()
        await post_run(url, "clerk", run_input(thread, [("user", "go")]))
        # Pre-1.0 clients have no `resume`: the same entries ride in forwardedProps.
        entries = [
            {"interruptId": "w1", "status": "cancelled"},
            {"interruptId": "q1", "status": "resolved", "payload": {"content": "fine"}},
        ]
        resumed = await post_run(
            url, "clerk", run_input(thread, [], forwarded_props={"resume": entries})
        )
        await client.cancel(thread)
    results = {e.tool_call_id: e.content for e in resumed if isinstance(e, ToolCallResultEvent)}
    assert "rejected" in str(results["w1"]) and "cancelled by the user" in str(results["w1"])
    assert results["q1"] == "fine"


async def test_a_cancelled_run_finishes_with_the_cancelled_outcome(
    dev_env: WorkflowEnvironment,
) -> None:
    async with agui_server(dev_env) as (url, client):
        thread = new_id()
        cancelled = asyncio.Event()

        async def cancel_once_streaming(event: Event) -> None:
            if isinstance(event, TextMessageContentEvent) and not cancelled.is_set():
                cancelled.set()
                await client.cancel(thread)

        events = await post_run(
            url,
            "agui-slow",
            run_input(thread, [("user", "talk")]),
            on_event=cancel_once_streaming,
        )
    last = events[-1]
    assert cancelled.is_set()
    assert isinstance(last, RunFinishedEvent), last
    assert last.outcome is not None and last.outcome.type == "cancelled"


async def test_a_failing_run_ends_with_run_error(dev_env: WorkflowEnvironment) -> None:
    async with agui_server(dev_env) as (url, _):
        events = await post_run(url, "no-such-agent", run_input(new_id(), [("user", "hi")]))
    error = events[-1]
    assert isinstance(error, RunErrorEvent), events
    assert "no-such-agent" in error.message and error.code == "UnknownAgent", error


async def test_a_budget_stopped_run_ends_its_turn_with_run_error_from_its_own_state(
    dev_env: WorkflowEnvironment,
) -> None:
    """Regression (issue 17): AG-UI's ended states lacked BUDGET_EXCEEDED, so such a turn ended
    only when the closed-run poll saw the workflow completed, as a RUN_FINISHED that hid why
    no answer came. The budget's own state ends it, saying so."""
    async with agui_server(dev_env) as (url, client):
        thread = new_id()
        events = await post_run(url, "agui-budgeted", run_input(thread, [("user", "look")]))
        result = await client.result(thread)
    results = [e.content for e in events if isinstance(e, ToolCallResultEvent)]
    last = events[-1]
    assert results == ["nothing here"]
    assert result.outcome == "budget_exceeded"
    assert isinstance(last, RunErrorEvent), events
    assert last.code == "BudgetExceeded", last
    assert "model call budget reached (1 of 1)" in last.message, last


async def test_bad_input_is_an_http_error_before_any_event(dev_env: WorkflowEnvironment) -> None:
    async with agui_server(dev_env) as (url, _), httpx.AsyncClient(timeout=30) as http:
        no_user = run_input(new_id(), [("assistant", "hello")])
        not_agui = {"thread": "x", "messages": "hi"}
        unknown_thread = run_input(
            new_id(), [], resume=[{"interruptId": "w1", "status": "cancelled"}]
        )
        answers = [
            await http.post(f"{url}/agents/clerk/agui", json=body)
            for body in (no_user, not_agui, unknown_thread)
        ]
    assert [a.status_code for a in answers] == [422, 422, 404], [a.text for a in answers]
    assert "last message must be the user's" in answers[0].text
    assert "threadId" in answers[1].text or "thread_id" in answers[1].text


async def test_a_message_sent_while_an_approval_waits_ends_in_that_interrupt(
    dev_env: WorkflowEnvironment,
) -> None:
    """The run cannot answer before the approval: the AG-UI run says so at once, and the
    message is answered after the resume."""
    replies = [
        AssistantMessage(
            tool_calls=[ToolCall(id="w9", name="wire_money", arguments='{"amount": 7}')]
        ),
        "wired, and noted your message",
    ]
    agent = Agent("agui-queued", model=ScriptedModel(new_id(), replies), tools=clerk.tool_list)
    # Cached, as deployed: see PAGE_WORKER in test_operator_page.py.
    async with agent_client(dev_env.client, agent, max_cached_workflows=100) as (client, _):  # noqa: SIM117
        async with http_server(create_app(client)) as url:
            thread = new_id()
            await post_run(url, "agui-queued", run_input(thread, [("user", "wire")]))
            queued = await post_run(url, "agui-queued", run_input(thread, [("user", "also")]))
            entry = {"interruptId": "w9", "status": "resolved", "payload": {"approved": True}}
            resumed = await post_run(url, "agui-queued", run_input(thread, [], resume=[entry]))
            await client.cancel(thread)
    finished = queued[-1]
    assert isinstance(finished, RunFinishedEvent)
    assert isinstance(finished.outcome, RunFinishedInterruptOutcome)
    assert [i.id for i in finished.outcome.interrupts] == ["w9"]
    assert assistant_text(resumed) == ["wired, and noted your message"]
