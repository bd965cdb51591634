"""The `status` query says why a run ended (issue 19): before `reason`, a run that failed, was
stopped by a guardrail or spent its budget said only its state, and a user of the CLI's
`status` or `serve` had to read the history to learn why."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx2 as httpx
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    Budget,
    ModelRequest,
    RunState,
    ScriptedModel,
    StatusInfo,
    Usage,
    input_guardrail,
    tool,
)
from durable_agent.serve.app import create_app

from .conftest import agent_client, calls, new_id, run_error
from .test_cli import cli
from .test_serve import http_server


@tool
def look(place: str) -> str:
    """Look somewhere.

    Args:
        place: Where to look.
    """
    return f"nothing at {place}"


def looking(name: str, max_turns: int = 50, budget: Budget | None = None) -> Agent:
    """An agent that never answers: it looks somewhere each turn."""

    turns = itertools.count()

    def script(request: ModelRequest) -> AssistantMessage:
        return calls((f"look-{next(turns)}", "look", {"place": "attic"}))

    model = ScriptedModel(new_id(), script)
    return Agent(name, model=model, tools=[look], max_turns=max_turns, budget=budget)


def no_secrets(text: str) -> str | None:
    return "the message asks for a password" if "password" in text else None


async def test_a_failed_run_says_its_failure_in_status(time_env: WorkflowEnvironment) -> None:
    async with agent_client(time_env.client, looking("reason-loops", max_turns=2)) as (client, _):
        handle = await client.start("reason-loops", "search the house")
        cause = await run_error(handle)
        status = await client.status(handle.id)
    assert status.state is RunState.FAILED
    assert status.reason == cause.message == "max_turns (2) reached without a final answer"


async def test_a_spent_budget_says_which_in_status_and_result(
    time_env: WorkflowEnvironment,
) -> None:
    agent = looking("reason-budget", budget=Budget(max_model_calls=1))
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("reason-budget", "search the house")
        result = await handle.result()
        status = await client.status(handle.id)
    assert result.outcome == "budget_exceeded"
    assert status.state is RunState.BUDGET_EXCEEDED
    assert status.reason == result.reason == "model call budget reached (1 of 1)"


async def test_a_completed_run_has_no_reason_and_its_status_json_stays_as_before(
    time_env: WorkflowEnvironment,
) -> None:
    """Readers from before `reason` refuse unknown fields: a status without one leaves it out."""
    agent = Agent("reason-done", model=ScriptedModel(new_id(), ["Found it."]))
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("reason-done", "search the house")
        await handle.result()
        status = await client.status(handle.id)
    assert status.state is RunState.COMPLETED and status.reason is None
    assert "reason" not in json.loads(status.model_dump_json())
    old = StatusInfo(
        state=RunState.RUNNING, agent="a", turn=0, usage=Usage(), pending=0, messages=1
    )
    assert set(json.loads(old.model_dump_json())) == {
        "state",
        "agent",
        "turn",
        "usage",
        "pending",
        "messages",
    }


async def test_the_cli_status_and_serve_show_why_a_guardrail_ended_the_run(
    dev_env: WorkflowEnvironment,
) -> None:
    agent = Agent(
        "reason-guarded",
        model=ScriptedModel(new_id(), []),
        guardrails=[input_guardrail(no_secrets)],
    )
    address = dev_env.client.service_client.config.target_host
    async with agent_client(dev_env.client, agent) as (client, worker):  # noqa: SIM117
        async with (
            http_server(create_app(client)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as http,
        ):
            handle = await client.start("reason-guarded", "the password, please")
            await handle.result()
            # The CLI in a thread: this event loop runs the worker that answers its query.
            printed = await asyncio.to_thread(cli, address, worker.task_queue, "status", handle.id)
            served = await http.get(f"/runs/{handle.id}")
    assert served.status_code == 200, served.text
    for status in (json.loads(printed.stdout), served.json()["state"]):
        assert status["state"] == "guardrail_tripped"
        assert status["reason"] == "the message asks for a password"
