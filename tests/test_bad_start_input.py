"""Bad input to start a run: an unknown agent, a malformed or incomplete input, too few or too
many arguments. Each fails the run at once with a non-retryable error that says what was
wrong, instead of a workflow task that fails for ever."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, ScriptedModel

from .conftest import agent_client, new_id, run_error, serving
from .helpers import result_unless_stuck


@pytest.mark.parametrize(
    ("payload", "error_type", "mentions"),
    [
        ({"agent": "nobody", "prompt": "hi"}, "UnknownAgent", "nobody"),
        ({"agent": "x"}, "InvalidInput", "prompt"),
        ("junk", "InvalidInput", "malformed"),
        (None, "InvalidInput", "malformed"),
        ({"agent": "x", "prompt": "hi", "max_turns": 0}, "InvalidInput", "max_turns"),
        ({"agent": "x", "prompt": "hi", "colour": "red"}, "InvalidInput", "colour"),
        (
            {"agent": "x", "messages": [{"role": "wizard", "content": "x"}]},
            "InvalidInput",
            "wizard",
        ),
    ],
)
async def test_bad_start_input_fails_fast(
    time_env: WorkflowEnvironment, payload: object, error_type: str, mentions: str
) -> None:
    agent = Agent("x", model=ScriptedModel("x", ["hi"]))
    async with serving(time_env.client, agent) as worker:
        handle = await time_env.client.start_workflow(
            "AgentWorkflow", payload, id=new_id(), task_queue=worker.task_queue
        )
        cause = await run_error(handle)
    assert cause.type == error_type
    assert cause.non_retryable
    assert mentions in str(cause)


async def test_unknown_agent_names_the_served_agents(time_env: WorkflowEnvironment) -> None:
    agent = Agent("support", model=ScriptedModel("support", ["hi"]))
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("suport", "hi")
        cause = await run_error(handle)
    assert cause.type == "UnknownAgent"
    assert "'suport'" in str(cause) and "support" in str(cause)


@pytest.mark.parametrize("args", [[], [{"agent": "x"}, "extra"]])
async def test_start_with_no_or_too_many_inputs_fails_fast(
    time_env: WorkflowEnvironment, args: list[object]
) -> None:
    """Regression: `run` took exactly one argument, so `temporal workflow start --type
    AgentWorkflow` without `--input` raised TypeError before the input was parsed and failed
    every workflow task instead of failing the run with InvalidInput."""
    agent = Agent("x", model=ScriptedModel("x", ["hi"]))
    async with serving(time_env.client, agent) as worker:
        handle = await time_env.client.start_workflow(
            "AgentWorkflow", args=args, id=new_id(), task_queue=worker.task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await result_unless_stuck(handle)
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "InvalidInput"
