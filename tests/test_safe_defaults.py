"""Safe defaults (issue 10, item 5): decorators bare or called, duplicate agent names refused,
and every CLI error one line with a non-zero exit, at once."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agent import Agent, Tool, ToolKind, external_tool, long_running_tool
from durable_agent.authoring import _registry

from .processes import start_worker, stop
from .test_cli import cli

# --- decorators ------------------------------------------------------------------------------


def test_external_and_long_running_tools_work_bare_and_called() -> None:
    @external_tool
    def lookup(order_id: str) -> str:
        """Look an order up.

        Args:
            order_id: The order.
        """
        return ""

    @external_tool(name="lookup2")
    def lookup_called(order_id: str) -> str:
        """Look an order up."""
        return ""

    @long_running_tool
    def enqueue(job: str) -> None:
        """Start a job."""

    @long_running_tool(name="enqueue2")
    def enqueue_called(job: str) -> None:
        """Start a job."""

    assert isinstance(lookup, Tool) and lookup.kind is ToolKind.EXTERNAL and lookup.fn is None
    assert lookup.spec().parameters["properties"]["order_id"]["description"] == "The order."
    assert (lookup_called.name, lookup_called.kind) == ("lookup2", ToolKind.EXTERNAL)
    assert isinstance(enqueue, Tool) and enqueue.kind is ToolKind.LONG_RUNNING
    assert (enqueue_called.name, enqueue_called.kind) == ("enqueue2", ToolKind.LONG_RUNNING)


# --- duplicate agent names -------------------------------------------------------------------


def billing(instructions: str) -> Agent:
    return Agent("billing", model="test", instructions=instructions)


def test_two_agents_with_one_name_in_a_handoff_graph_are_refused_naming_both() -> None:
    # Before: reachable() silently kept whichever 'billing' it met first.
    triage = Agent("triage", model="test", handoffs=[billing("a")])
    support = Agent("support", model="test", handoffs=[billing("b")])
    front = Agent("front", model="test", handoffs=[triage, support])
    with pytest.raises(ValueError) as refused:
        front.reachable()
    message = str(refused.value)
    assert "two different agents are named 'billing'" in message
    assert "reached from 'triage'" in message and "reached from 'support'" in message
    with pytest.raises(ValueError, match="named 'billing'"):
        _registry.register(f"dup-{uuid.uuid4()}", [front])


def test_a_root_and_a_handed_off_agent_with_one_name_are_refused_at_register() -> None:
    triage = Agent("triage", model="test", handoffs=[billing("a")])
    with pytest.raises(ValueError, match=r"one given as a root agent, one reached from 'triage'"):
        _registry.register(f"dup-{uuid.uuid4()}", [billing("b"), triage])


def test_one_agent_reached_twice_is_one_agent() -> None:
    shared = billing("a")
    triage = Agent("triage", model="test", handoffs=[shared])
    support = Agent("support", model="test", handoffs=[shared, triage])
    front = Agent("front", model="test", handoffs=[triage, support])
    assert sorted(a.name for a in front.reachable()) == ["billing", "front", "support", "triage"]
    assert _registry.register(f"ok-{uuid.uuid4()}", [front, shared])["billing"] is shared


# --- CLI errors: one line, non-zero exit, at once --------------------------------------------


def fails(address: str, queue: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI's answer to a command that must fail. A command that waits instead (`watch`
    polled for ever) never answers: `cli`'s bound stops it and the test fails."""
    done = cli(address, queue, *args, check=False)
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    return done


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [("status",), ("watch",), ("resolve", "c1", "x"), ("pending",), ("say", "hi")],
    ids=lambda c: c[0],
)
async def test_commands_on_an_unknown_workflow_id_fail_at_once(
    dev_env: WorkflowEnvironment, command: tuple[str, ...]
) -> None:
    # Before: `watch` polled for ever; the others printed the server's wording.
    address = dev_env.client.service_client.config.target_host
    unknown = f"no-such-run-{uuid.uuid4()}"
    # At once: the command ends on the server's NOT_FOUND, said in one line, rather than
    # waiting for a run to appear (no timing: a busy machine takes seconds just to start the
    # interpreter).
    done = fails(address, "q", command[0], unknown, *command[1:])
    assert one_line(done) == f"error: no run with id {unknown}"


async def test_run_of_an_unknown_agent_says_which_agents_the_worker_serves(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # Before: a WorkflowFailureError traceback.
    address = dev_env.client.service_client.config.target_host
    queue = f"safe-{uuid.uuid4()}"
    worker = start_worker(address, queue, tmp_path / "log.jsonl")
    try:
        done = fails(address, queue, "run", "nosuchagent", "hi")
    finally:
        stop(worker)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "failed: unknown agent 'nosuchagent' (this worker serves: " in errors[0]
    assert " clerk, " in errors[0], "the agents the worker serves are named"


async def test_worker_with_a_bad_agents_path_fails_in_one_line(
    dev_env: WorkflowEnvironment,
) -> None:
    address = dev_env.client.service_client.config.target_host
    done = fails(address, "q", "worker", "--agents", "bad:path")
    assert one_line(done) == "error: cannot load --agents 'bad:path': No module named 'bad'"
    done = fails(address, "q", "worker", "--agents", "badpath")
    assert "must look like 'package.module:attribute'" in one_line(done)


async def test_start_from_a_malformed_file_fails_in_one_line(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    bad = tmp_path / "conv.json"
    bad.write_text("{not json")
    done = fails(address, "q", "start", "--from", str(bad))
    assert one_line(done).startswith(f"error: --from {bad} is not an exported snapshot (")
    done = fails(address, "q", "start", "--from", str(tmp_path / "missing.json"))
    assert one_line(done).endswith("No such file or directory")


async def test_debug_shows_the_traceback(dev_env: WorkflowEnvironment) -> None:
    address = dev_env.client.service_client.config.target_host
    done = cli(address, "q", "--debug", "status", "no-such-run", check=False)
    assert done.returncode != 0 and "Traceback" in done.stderr
    assert done.stderr.rstrip().endswith("error: no run with id no-such-run")
