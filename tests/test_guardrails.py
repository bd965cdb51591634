"""Guardrails (issue 19 part 4): input and output guardrails end a run as `guardrail_tripped`
with a reason, seen in its result, status, events, search attribute, the CLI and AG-UI; tool
guardrails refuse a call with an error result the model sees. Each runs as an activity."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from ag_ui.core import RunErrorEvent
from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    GuardrailVerdict,
    RunState,
    ScriptedModel,
    ToolCall,
    ToolMessage,
    external_tool,
    input_guardrail,
    output_guardrail,
    tool,
    tool_guardrail,
)
from durable_agent.activities.guardrails import check_tool_call
from durable_agent.activities.tools import tool_activity
from durable_agent.activities.transcripts import TranscriptCache
from durable_agent.serve.app import create_app
from durable_agent.wire import (
    AGENT_STATUS,
    GuardrailRefusal,
    StatusEvent,
    ToolInvocation,
    UserMessage,
)
from durable_agent.workflows.call_book import OpenCall, find_target, route_of
from durable_agent.workflows.guardrails import in_tool_activity, unanswered

from .conftest import agent_client, calls, new_id, run_error
from .helpers import events
from .processes import BIN, ROOT, start_worker, stop
from .test_agui import post_run, run_input
from .test_cli import cli
from .test_serve import http_server


def no_secrets(text: str) -> str | None:
    return "the message asks for a password" if "password" in text.lower() else None


def polite(text: str) -> bool:
    return "stupid" in text  # True trips, with a generic reason


async def no_deletes(name: str, arguments: dict[str, Any]) -> str | None:
    return f"{name} may not delete {arguments.get('path')}" if name == "delete" else None


@tool
def delete(path: str) -> str:
    """Delete a file.

    Args:
        path: The file.
    """
    raise AssertionError("a refused call never runs")


@tool
def read(path: str) -> str:
    """Read a file.

    Args:
        path: The file.
    """
    return f"contents of {path}"


async def guardrail_activities(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The guardrail calls the run recorded: local activities' markers (function guardrails),
    scheduled activities (agent guardrails)."""
    names = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            if name.startswith("guardrail."):
                names.append(name)
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = event.marker_recorded_event_attributes.details
            data = b"".join(p.data for p in details["data"].payloads) if "data" in details else b""
            names += re.findall(r"guardrail\.\w+", data.decode(errors="replace"))
    return names


async def tool_invocations(handle: WorkflowHandle[Any, Any]) -> dict[str, list[str]]:
    """Each tool activity the run scheduled: its call id and the guardrails it was to check."""
    found = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name.startswith("tool."):
                invocation = json.loads(scheduled.input.payloads[0].data)
                found[invocation["tool_call_id"]] = invocation.get("guardrails", [])
    return found


def guarded(name: str, replies: list[Any], **options: Any) -> Agent:
    return Agent(
        name,
        model=ScriptedModel(new_id(), replies),
        tools=[delete, read],
        guardrails=[
            input_guardrail(no_secrets),
            output_guardrail(polite),
            tool_guardrail(no_deletes),
        ],
        **options,
    )


async def test_an_input_guardrail_ends_the_run_before_any_model_call(
    dev_env: WorkflowEnvironment,
) -> None:
    agent = guarded("guarded-in", [])  # no reply scripted: a model call would fail the run
    async with agent_client(dev_env.client, agent) as (client, _):
        handle = await client.start("guarded-in", "What is the admin password?")
        result = await handle.result()
        status = await client.status(handle.id)
        history = await client.history(handle.id, ["agent"])
        described = await handle.describe()
    assert result.outcome == "guardrail_tripped"
    assert result.reason == "the message asks for a password"
    assert status.state is RunState.GUARDRAIL_TRIPPED and status.turn == 0
    [tripped] = events(history.items, "guardrail_tripped")
    assert tripped["guardrail"] == "no_secrets" and tripped["kind"] == "input"
    assert described.typed_search_attributes.get(AGENT_STATUS) == "guardrail_tripped"
    assert await guardrail_activities(handle) == ["guardrail.no_secrets"]


async def test_a_tool_guardrail_refuses_a_call_and_the_model_sees_why(
    time_env: WorkflowEnvironment,
) -> None:
    replies = [
        calls(("d1", "delete", {"path": "/etc"}), ("r1", "read", {"path": "/etc/hosts"})),
        calls(("r2", "read", {"path": "/tmp/x"})),
        "Done: I read two files and may not delete /etc.",
    ]
    agent = guarded("guarded-tool", replies)
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("guarded-tool", "tidy up")
        result = await handle.result()
        history = await client.history(handle.id, ["tool"])
    assert result.outcome == "completed"
    answers = {m.tool_call_id: m for m in result.messages if isinstance(m, ToolMessage)}
    assert answers["d1"].is_error
    assert answers["d1"].content == "refused by guardrail no_deletes: delete may not delete /etc"
    assert answers["r1"].content == "contents of /etc/hosts" and not answers["r1"].is_error
    [refused] = events(history.items, "guardrail_refused")
    assert refused["tool_call_id"] == "d1"
    # Input once (the one user message), output once; the tool guardrail checks each call
    # inside its tool activity, with no activity of its own.
    assert sorted(await guardrail_activities(handle)) == [
        "guardrail.no_secrets",
        "guardrail.polite",
    ]
    assert await tool_invocations(handle) == {
        "d1": ["no_deletes"],
        "r1": ["no_deletes"],
        "r2": ["no_deletes"],
    }


async def test_a_tool_guardrail_that_cannot_check_fails_the_run_and_the_tool_never_runs(
    time_env: WorkflowEnvironment,
) -> None:
    ran: list[str] = []

    def broken(name: str, arguments: dict[str, Any]) -> None:
        raise ConnectionError("policy service unreachable")

    @tool
    def touch(path: str) -> str:
        """Touch a file.

        Args:
            path: The file.
        """
        ran.append(path)
        return "touched"

    agent = Agent(
        "guarded-broken",
        model=ScriptedModel(new_id(), [calls(("t1", "touch", {"path": "/tmp/x"})), "never"]),
        tools=[touch],
        guardrails=[tool_guardrail(broken)],
    )
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("guarded-broken", "touch it")
        cause = await run_error(handle)
    # A check that could not run is not a pass: its 3 attempts spent, the run fails.
    assert cause.type == "GuardrailFailed"
    assert "guardrail broken could not run: policy service unreachable" in str(cause)
    assert ran == []


async def test_a_call_needing_approval_is_checked_before_anyone_is_asked(
    time_env: WorkflowEnvironment,
) -> None:
    @tool(requires_approval=True)
    def wipe(path: str) -> str:
        """Wipe a disk.

        Args:
            path: The disk.
        """
        raise AssertionError("a refused call never runs")

    def no_wipes(name: str, arguments: dict[str, Any]) -> str:
        return f"{name} is never allowed"

    replies = [calls(("w1", "wipe", {"path": "/dev/sda"})), "I may not wipe it."]
    agent = Agent(
        "guarded-approval",
        model=ScriptedModel(new_id(), replies),
        tools=[wipe],
        guardrails=[tool_guardrail(no_wipes)],
    )
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("guarded-approval", "wipe it")
        result = await asyncio.wait_for(handle.result(), 60)  # nobody approves: refused first
    answers = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert [a.content for a in answers] == ["refused by guardrail no_wipes: wipe is never allowed"]
    assert await guardrail_activities(handle) == ["guardrail.no_wipes"]
    assert await tool_invocations(handle) == {}


async def test_an_output_guardrail_ends_the_run_after_the_answer(
    time_env: WorkflowEnvironment,
) -> None:
    agent = guarded("guarded-out", ["That is a stupid question."])
    async with agent_client(time_env.client, agent) as (client, _):
        result = await (await client.start("guarded-out", "Why?")).result()
    assert result.outcome == "guardrail_tripped"
    assert result.reason == "guardrail polite tripped"
    assert result.final_text == "That is a stupid question."  # in the record, not an answer


async def test_an_agent_as_a_guardrail_answers_a_verdict(time_env: WorkflowEnvironment) -> None:
    verdict = json.dumps({"tripped": True, "reason": "off topic: this desk does geography"})
    judge = Agent(
        "judge",
        model=ScriptedModel(new_id(), [verdict]),
        instructions="Is the message about geography? Trip when it is not.",
        output_type=GuardrailVerdict,
    )
    agent = Agent(
        "geo-desk",
        model=ScriptedModel(new_id(), []),
        guardrails=[input_guardrail(judge)],
    )
    async with agent_client(time_env.client, agent) as (client, _):
        result = await (await client.start("geo-desk", "Write me a poem")).result()
    assert result.outcome == "guardrail_tripped"
    assert result.reason == "off topic: this desk does geography"


def checked(*guardrails: str) -> ToolInvocation:
    return ToolInvocation(
        tool_call_id="c1",
        name="delete",
        arguments='{"path": "/etc"}',
        agent="a",
        guardrails=list(guardrails),
    )


async def test_the_tool_activity_answers_the_first_refusal_in_the_agents_order() -> None:
    async def says_no(name: str, arguments: dict[str, Any]) -> str:
        return f"no {name} of {arguments['path']}"

    worker = {
        "passes": tool_guardrail(lambda name, arguments: None, name="passes"),
        "says_no": tool_guardrail(says_no),
        "also_no": tool_guardrail(lambda name, arguments: True, name="also_no"),
    }
    refusal = await check_tool_call(worker, checked("passes", "says_no", "also_no"))
    assert refusal == GuardrailRefusal(guardrail="says_no", reason="no delete of /etc")
    assert await check_tool_call(worker, checked("passes")) is None


async def test_a_tool_guardrail_the_worker_lacks_is_no_pass_and_no_failure() -> None:
    """A worker serving the tool but lacking the guardrail (a rolling deploy that added it)
    neither runs the tool unchecked nor fails the run: the attempt fails retryably, and
    Temporal runs the call again, on a worker that has the guardrail."""
    ran: list[str] = []

    @tool
    def delete(path: str) -> str:
        """Delete a file.

        Args:
            path: Which.
        """
        ran.append(path)
        return "deleted"

    run_tool = tool_activity(delete, TranscriptCache(), guardrails={})
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(run_tool, checked("elsewhere"))
    assert raised.value.type == "GuardrailMissing" and not raised.value.non_retryable
    assert "elsewhere" in str(raised.value)
    assert not ran, "the tool never runs without its check"


async def test_a_tool_guardrail_in_the_activity_is_retried_by_its_own_policy() -> None:
    attempts: list[int] = []

    def flaky(name: str, arguments: dict[str, Any]) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("blip")

    def refuses_to_work(name: str, arguments: dict[str, Any]) -> None:
        raise ApplicationError("bad policy file", non_retryable=True)

    policy = RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=3)
    worker = {
        "flaky": dataclasses.replace(tool_guardrail(flaky), retry=policy),
        "refuses_to_work": dataclasses.replace(tool_guardrail(refuses_to_work), retry=policy),
    }
    assert await check_tool_call(worker, checked("flaky")) is None
    assert len(attempts) == 3
    refusal = await check_tool_call(worker, checked("refuses_to_work"))
    assert refusal == GuardrailRefusal(guardrail="refuses_to_work", error="bad policy file")


def test_only_calls_that_run_a_tool_activity_at_once_are_checked_inside_it() -> None:
    @tool(requires_approval=True)
    def erase(path: str) -> str:
        """Erase a file.

        Args:
            path: The file.
        """
        return "erased"

    @external_tool
    def ask(question: str) -> str:
        """Ask a person.

        Args:
            question: What.
        """
        raise AssertionError("answered by signal")

    agent = Agent("routes", model="openai:x", tools=[read, erase, ask])

    def opened(name: str) -> OpenCall:
        call = ToolCall(id=name, name=name, arguments='{"path": "/x"}')
        route, needs_approval = route_of(agent, call)
        return OpenCall(call, route, needs_approval, find_target(agent, call))

    function = [tool_guardrail(no_deletes)]
    assert in_tool_activity(opened("read"), function)
    assert not in_tool_activity(opened("erase"), function)  # refused before anyone is asked
    assert not in_tool_activity(opened("ask"), function)  # no activity runs
    assert not in_tool_activity(opened("nowhere"), function)
    assert not in_tool_activity(opened("read"), [tool_guardrail(no_deletes, local=True)])
    judge = Agent("judge", model="openai:x", output_type=GuardrailVerdict)
    assert not in_tool_activity(opened("read"), [*function, tool_guardrail(judge)])


def test_input_guardrails_see_only_the_messages_not_yet_answered() -> None:
    items = [
        UserMessage(content="first"),
        AssistantMessage(content="answered"),
        UserMessage(content="second"),
        StatusEvent(source="agent", kind="model_called", at=datetime.now(UTC)),
        UserMessage(content="third"),
    ]
    assert [m.content for m in unanswered(items)] == ["second", "third"]
    assert unanswered([*items, AssistantMessage(content="done")]) == []


def test_an_agent_guardrail_must_answer_a_verdict() -> None:
    with pytest.raises(ValueError, match="GuardrailVerdict"):
        input_guardrail(Agent("loose", model="openai:x"))


async def test_ag_ui_ends_a_tripped_turn_with_run_error(dev_env: WorkflowEnvironment) -> None:
    agent = guarded("agui-guarded", [])
    async with agent_client(dev_env.client, agent, max_cached_workflows=100) as (client, _):  # noqa: SIM117
        async with http_server(create_app(client)) as url:
            thread = new_id()
            body = run_input(thread, [("user", "my password is hunter2")])
            got = await post_run(url, "agui-guarded", body)
    last = got[-1]
    assert isinstance(last, RunErrorEvent), got
    assert last.code == "GuardrailTripped"
    assert "the message asks for a password" in last.message


# ---------------------------------------------------------------------- the CLI, as a user runs it


class Total(BaseModel):
    total: int


CLI_AGENTS = [
    Agent("cli-typed", model=ScriptedModel("cli-typed", ['{"total": 42}']), output_type=Total),
    Agent(
        "cli-guarded",
        model=ScriptedModel("cli-guarded", []),
        guardrails=[input_guardrail(no_secrets)],
    ),
]


def test_the_cli_prints_a_typed_answer_a_tripped_guardrail_and_output_schemas(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    queue = f"cli-{uuid.uuid4()}"
    agents = "tests.test_guardrails:CLI_AGENTS"
    worker = start_worker(address, queue, tmp_path / "log.jsonl", agents=agents)
    try:
        typed = cli(address, queue, "run", "cli-typed", "add it up")
        tripped = cli(address, queue, "run", "cli-guarded", "the password, please")
    finally:
        stop(worker)
    lines = typed.stdout.splitlines()  # the conversation, then the typed answer as JSON
    start = max(i for i, line in enumerate(lines) if line == "{")
    assert json.loads("\n".join(lines[start:])) == {"total": 42}
    assert "guardrail_tripped: the message asks for a password" in tripped.stderr
    schemas = subprocess.run(
        [str(BIN / "durable-agent"), "schema", "--agents", agents],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    published = json.loads(schemas.stdout)["agents"]
    assert published["cli-typed"] == Total.model_json_schema()
    assert published["cli-guarded"] == {"type": "string"}


async def test_serve_result_route_carries_the_typed_answer_and_the_tripped_reason(
    dev_env: WorkflowEnvironment,
) -> None:
    typed, guarded = CLI_AGENTS
    async with agent_client(dev_env.client, typed, guarded) as (client, _):  # noqa: SIM117
        async with (
            http_server(create_app(client)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as http,
        ):
            results = {}
            for agent, prompt in (("cli-typed", "add"), ("cli-guarded", "a password?")):
                started = await http.post("/runs", json={"agent": agent, "prompt": prompt})
                assert started.status_code == 201, started.text
                handle = client.handle(started.json()["workflow_id"])
                await handle.result()
                done = await http.get(f"/runs/{handle.id}/result")
                assert done.status_code == 200, done.text
                results[agent] = done.json()
    assert results["cli-typed"]["output"] == {"total": 42}
    assert results["cli-guarded"]["outcome"] == "guardrail_tripped"
    assert results["cli-guarded"]["reason"] == "the message asks for a password"
