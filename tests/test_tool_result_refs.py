"""Large tool results are stored in history once: the next model call names them by ref."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.model import ModelActivities
from activities.tools import tool_activities
from activities.transcripts import REF_MIN_CHARS, TranscriptCache
from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    ScriptedModel,
    ToolMessage,
    _registry,
    tool,
)
from durable_agent.client import AgentClient
from workflows.agent_workflow import AgentWorkflow

from .conftest import calls, serving

SIZE = 20_000


@tool
def page(n: int) -> str:
    """A large page.

    Args:
        n: Which page.
    """
    return str(n) * SIZE


def reader(name: str, seen: list[str]) -> Agent:
    """Reads pages 1 and 2 in parallel, then 3, recording every tool result it is shown."""
    replies = [
        calls(("p1", "page", {"n": 1}), ("p2", "page", {"n": 2})),
        calls(("p3", "page", {"n": 3})),
        "read",
    ]

    def script(request: ModelRequest) -> AssistantMessage:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        seen[:] = [m.content for m in request.messages if isinstance(m, ToolMessage)]
        reply = replies[turn]
        return reply if isinstance(reply, AssistantMessage) else AssistantMessage(content=reply)

    return Agent(name, model=ScriptedModel(name, script), tools=[page])


async def model_inputs(env: WorkflowEnvironment, workflow_id: str) -> list[int]:
    """Bytes of each model activity's input, as history holds them."""
    sizes = []
    async for event in env.client.get_workflow_handle(workflow_id).fetch_history_events():
        attrs = event.activity_task_scheduled_event_attributes
        scheduled = event.HasField("activity_task_scheduled_event_attributes")
        if scheduled and attrs.activity_type.name == "model.complete":
            sizes.append(sum(p.ByteSize() for p in attrs.input.payloads))
    return sizes


async def test_large_results_reach_the_model_in_full_but_history_once(
    time_env: WorkflowEnvironment,
) -> None:
    seen: list[str] = []
    agent = reader("refs", seen)
    async with serving(time_env.client, agent) as worker:
        client = AgentClient(time_env.client, worker.task_queue)
        handle = await client.start("refs", "read three pages")
        result = await handle.result()
    assert result.final_text == "read"
    assert seen == ["1" * SIZE, "2" * SIZE, "3" * SIZE], "the model saw every page in full"
    contents = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert contents == seen
    sizes = await model_inputs(time_env, handle.id)
    assert len(sizes) == 3
    assert max(sizes) < SIZE / 4, f"model inputs carry refs, not pages: {sizes}"


async def test_a_model_call_on_a_worker_without_the_results_reads_them_from_the_workflow(
    time_env: WorkflowEnvironment,
) -> None:
    """As when the tool ran on another worker: its result is not in this worker's cache."""
    seen: list[str] = []
    agent = reader("refs-miss", seen)
    queue = f"tq-{uuid.uuid4()}"
    _registry.register(queue, [agent])
    assert isinstance(agent.model, ScriptedModel)
    models = ModelActivities({agent.model.name: agent.model})
    elsewhere = TranscriptCache()  # the tools' worker keeps its results here
    worker = Worker(
        time_env.client,
        task_queue=queue,
        workflows=[AgentWorkflow],
        activities=[models.complete, *tool_activities(agent.tool_list, elsewhere)],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_cached_workflows=0,
    )
    async with worker:
        handle = await AgentClient(time_env.client, queue).start("refs-miss", "read three pages")
        result = await handle.result()
    assert result.final_text == "read"
    assert seen == ["1" * SIZE, "2" * SIZE, "3" * SIZE]
    assert models.transcripts.misses == 3, "each page was read from the workflow once"


def test_small_results_go_inline_and_each_large_one_gets_its_own_ref() -> None:
    cache = TranscriptCache(max_result_chars=3 * REF_MIN_CHARS)
    assert cache.keep_result("short") is None
    refs = [cache.keep_result(c * REF_MIN_CHARS) for c in "abcd"]
    assert all(refs) and len(set(refs)) == 4
    assert cache.keep_result("x" * (3 * REF_MIN_CHARS + 1)) is None, "larger than the whole cache"
