"""Real Temporal servers for the tests: time-skipping for the loop, the dev server end to end."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from durable_agent import Agent, AssistantMessage, ScriptedModel, ToolCall, ToolMessage
from durable_agent.activities.hooks import hook_activity
from durable_agent.activities.model import ModelActivities
from durable_agent.activities.tools import tool_activities
from durable_agent.activities.transcripts import TranscriptCache
from durable_agent.authoring import _registry
from durable_agent.client import AgentClient
from durable_agent.devserver import dynamic_config_args
from durable_agent.storage import PAYLOAD_DIR_VARIABLE, data_converter
from durable_agent.worker import SEARCH_ATTRIBUTES, create_worker, ensure_search_attributes
from durable_agent.workflows.agent_workflow import AgentWorkflow

from . import tools
from .fake_llm_server import FakeLLMServer

if TYPE_CHECKING:
    from .codec import CodecServer

BIN = Path(sys.executable).parent
# The converter every process uses, with its payload storage in a directory of this session's
# own (worker subprocesses inherit it), as a deployment's workers and clients share one.
os.environ.setdefault(PAYLOAD_DIR_VARIABLE, tempfile.mkdtemp(prefix="durable-agent-payloads-"))
# Each pytest-xdist worker has its own (a test that counts what one run stored found another
# worker's files in a shared one); the processes it starts import this module too and keep theirs.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _XDIST_WORKER and os.environ.get("DURABLE_AGENT_TEST_PAYLOADS_OF") != _XDIST_WORKER:
    _prefix = f"durable-agent-payloads-{_XDIST_WORKER}-"
    os.environ[PAYLOAD_DIR_VARIABLE] = tempfile.mkdtemp(prefix=_prefix)
    os.environ["DURABLE_AGENT_TEST_PAYLOADS_OF"] = _XDIST_WORKER


def binary(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not installed: run `make install`")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`), slow tests first: handed out one at a time
    (`--maxschedchunk 1`), the long ones start at once on every worker and the short ones fill
    in around them, instead of one long test starting last and holding the run open."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="module")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server per module (~1 s to start): time skips only while nothing else
    runs on it, so a run another module left behind could hold a later test's skip for ever
    (a two-day deadline test hung until pytest's timeout once the order changed under xdist)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=data_converter(),
    )
    await ensure_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=data_converter(),
        search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_extra_args=dynamic_config_args(),  # as `durable-agent dev` runs it
    )
    yield env
    await env.shutdown()


@asynccontextmanager
async def serving(client: Client, *agents: Agent, **options: object) -> AsyncIterator[Worker]:
    """A worker on a fresh task queue; every workflow task replays (no cache) to catch
    non-determinism early."""
    options.setdefault("max_cached_workflows", 0)
    options.setdefault("task_queue", f"tq-{uuid.uuid4()}")
    worker = create_worker(client, agents, **options)  # type: ignore[arg-type]
    async with worker:
        yield worker


@asynccontextmanager
async def agent_client(
    client: Client, *agents: Agent, **options: object
) -> AsyncIterator[tuple[AgentClient, Worker]]:
    """`serving` plus the `AgentClient` a user would hold for its task queue."""
    async with serving(client, *agents, **options) as worker:
        yield AgentClient(client, worker.task_queue), worker


@pytest.fixture(autouse=True)
def _fresh_tool_records() -> None:
    """Every test starts with no recorded tool runs and no release events."""
    tools.RUNS.clear()
    tools.RELEASE.clear()


@asynccontextmanager
async def serving_with_caches(
    client: Client, agent: Agent, cache: TranscriptCache, tool_cache: TranscriptCache | None = None
) -> AsyncIterator[tuple[str, ModelActivities]]:
    """A worker whose model and hook activities read `cache` and whose tools keep their results
    in `tool_cache` (default: `cache`): as when they run on different workers, or when the
    cache has dropped what a call needs. Yields its task queue and model activities."""
    queue = f"tq-{uuid.uuid4()}"
    _registry.register(queue, [agent])
    assert isinstance(agent.model, ScriptedModel)
    models = ModelActivities({agent.model.name: agent.model})
    models.transcripts = cache
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[AgentWorkflow],
        activities=[
            models.complete,
            *tool_activities(agent.tool_list, tool_cache or cache),
            *(hook_activity(h, cache) for h in agent.hook_list),
        ],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_cached_workflows=0,
    )
    async with worker:
        yield queue, models


async def run_error(handle: WorkflowHandle[Any, Any], seconds: float = 30) -> ApplicationError:
    """The error a run that must fail ended with (bounded, so a run that goes on fails)."""
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), seconds)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), f"not an application error: {cause!r}"
    return cause


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str = "the condition", seconds: float = 30
) -> None:
    """Poll `check` every 50 ms; bounded, so a broken run fails instead of hanging. (Queries do
    not skip time on the time-skipping server: waiting here is real time.)"""
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def calls(*specs: tuple[str, str, str | Mapping[str, object]]) -> AssistantMessage:
    """A model reply asking for tools: (id, name, arguments as raw text or as a dict)."""
    return AssistantMessage(
        tool_calls=[
            ToolCall(id=i, name=n, arguments=a if isinstance(a, str) else json.dumps(a))
            for i, n, a in specs
        ]
    )


def tool_messages(messages: Iterable[object]) -> list[ToolMessage]:
    return [m for m in messages if isinstance(m, ToolMessage)]


def new_id() -> str:
    return f"wf-{uuid.uuid4()}"


def names(items: Iterable[object]) -> list[str]:
    return [type(i).__name__ for i in items]


@contextmanager
def llm_server(
    monkeypatch: pytest.MonkeyPatch, context_window: int | None = None, token_scale: float = 1.0
) -> Iterator[FakeLLMServer]:
    """A local model server with the environment every provider reads pointing at it, as a
    user's worker finds OPENAI_BASE_URL / ANTHROPIC_BASE_URL (options: `FakeLLMServer`'s)."""
    with FakeLLMServer(context_window=context_window, token_scale=token_scale) as s:
        monkeypatch.setenv("OPENAI_BASE_URL", s.openai_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", s.anthropic_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        yield s


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    """The local model server (`llm_server`). A test file whose tests need another server (no
    environment, other options) defines its own `server`."""
    with llm_server(monkeypatch) as s:
        yield s


WINDOW = 8_000
"""The context window `window_server` refuses prompts over: small, so a test's run of a few
dozen tool results passes it many times."""


@pytest.fixture
def window_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    """The local model server with a small context window (`WINDOW`): a prompt over it is
    refused with the provider's own 400, and usage counts the prompt's tokens."""
    with llm_server(monkeypatch, context_window=WINDOW) as s:
        yield s


@pytest.fixture(scope="module")
async def codec_server() -> AsyncIterator[CodecServer]:
    """`durable-agent codec-server` with the shared test keys and a bearer token."""
    from .codec import codec_server_running  # it uses this module's helpers

    async with codec_server_running() as server:
        yield server
