"""Large tool results are stored in history once: the next model call names them by ref."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    ScriptedModel,
    ToolMessage,
    tool,
)
from durable_agent.activities.transcripts import REF_MIN_CHARS, TranscriptCache
from durable_agent.client import AgentClient

from .conftest import agent_client, calls, serving_with_caches

SIZE = 20_000


@tool
def page(n: int, size: int = SIZE) -> str:
    """A page.

    Args:
        n: Which page.
        size: How long.
    """
    return str(n) * size


# Two large results with a small one between them, then one more large one.
EXPECTED = ["1" * SIZE, "7", "2" * SIZE, "3" * SIZE]


def reader(name: str, seen: list[str], *, local_model: bool = False) -> Agent:
    """Reads pages, recording every tool result it is shown."""
    replies = [
        calls(
            ("p1", "page", {"n": 1}),
            ("s", "page", {"n": 7, "size": 1}),
            ("p2", "page", {"n": 2}),
        ),
        calls(("p3", "page", {"n": 3})),
        "read",
    ]

    def script(request: ModelRequest) -> AssistantMessage:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        seen[:] = [m.content for m in request.messages if isinstance(m, ToolMessage)]
        reply = replies[turn]
        return reply if isinstance(reply, AssistantMessage) else AssistantMessage(content=reply)

    return Agent(name, model=ScriptedModel(name, script), tools=[page], local_model=local_model)


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
    async with agent_client(time_env.client, agent) as (client, _):
        handle = await client.start("refs", "read the pages")
        result = await handle.result()
    assert result.final_text == "read"
    assert seen == EXPECTED, "the model saw every result in full, in call order"
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == EXPECTED
    sizes = await model_inputs(time_env, handle.id)
    assert len(sizes) == 3
    assert max(sizes) < SIZE / 4, f"model inputs carry refs, not pages: {sizes}"


@pytest.mark.parametrize(
    ("local_model", "misses"), [(False, 2), (True, 0)], ids=["remote", "local"]
)
async def test_results_kept_by_another_worker_reach_the_model(
    time_env: WorkflowEnvironment, local_model: bool, misses: int
) -> None:
    """The tools keep their results in a cache the model activity does not read, as on
    another worker. A model activity reads them from the workflow, one query a call; a local
    one (whose input never reaches history, and which must not query its own run) gets them
    inline, so nothing misses."""
    seen: list[str] = []
    agent = reader(f"refs-{local_model}", seen, local_model=local_model)
    async with serving_with_caches(
        time_env.client, agent, TranscriptCache(), tool_cache=TranscriptCache()
    ) as (queue, models):
        handle = await AgentClient(time_env.client, queue).start(agent.name, "read the pages")
        result = await handle.result()
    assert result.final_text == "read"
    assert seen == EXPECTED
    assert models.transcripts.misses == misses


async def test_a_local_model_call_on_a_worker_without_the_conversation_gets_it_whole(
    time_env: WorkflowEnvironment,
) -> None:
    """A local activity cannot query the run whose task it holds open: it says so, and the
    workflow sends the whole conversation. A cache that keeps nothing makes every call miss."""
    seen: list[str] = []
    agent = reader("local-miss", seen, local_model=True)
    forgetful = TranscriptCache(max_runs=0)
    async with serving_with_caches(time_env.client, agent, forgetful) as (queue, models):
        handle = await AgentClient(time_env.client, queue).start("local-miss", "read the pages")
        result = await handle.result()
    assert result.final_text == "read"
    assert seen == EXPECTED
    assert models.transcripts.misses == 2, "the second and third calls missed, once each"


def test_small_results_go_inline_and_each_large_one_gets_its_own_ref() -> None:
    cache = TranscriptCache(max_result_chars=3 * REF_MIN_CHARS)
    assert cache.keep_result("short") is None
    refs = [cache.keep_result(c * REF_MIN_CHARS) for c in "abcd"]
    assert all(refs) and len(set(refs)) == 4
    assert cache.keep_result("x" * (3 * REF_MIN_CHARS + 1)) is None, "larger than the whole cache"
