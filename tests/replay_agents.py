"""Agents behind the recorded histories in tests/histories/. Change them only together with a
re-recording (`python -m tests.record_histories`): the replay test is the guard that catches
workflow changes which would break runs already open."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta

from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from durable_agent import (
    Agent,
    AssistantMessage,
    Budget,
    ContextPolicy,
    HookContext,
    HookResult,
    MCPServer,
    ModelRequest,
    ModelSettings,
    ScriptedModel,
    ToolCall,
    ToolContext,
    UserMessage,
    external_tool,
    hook,
    input_guardrail,
    long_running_tool,
    output_guardrail,
    person,
    tool,
    tool_guardrail,
)
from durable_agent.wire import SUMMARY_INSTRUCTIONS

TASK_QUEUE = "replay-fixtures"


@tool
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: What to look up.
    """
    # Over 1 KB, so that the next model call sends it by ref (recorded from everything-v3 on).
    return f"value of {key}: " + "data " * 300


@tool(requires_approval=True)
def delete_account(user: str) -> str:
    """Delete a user's account.

    Args:
        user: Whose.
    """
    return f"deleted {user}"


@long_running_tool()
def start_export(table: str) -> str:
    """Start an export job.

    Args:
        table: Which table.
    """
    return "queued"


@external_tool()
def ask_manager(question: str) -> str:
    """Ask a manager.

    Args:
        question: The question.
    """
    raise NotImplementedError


def _call(call_id: str, name: str, **args: object) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=json.dumps(args))


specialist = Agent(
    "specialist",
    model=ScriptedModel(
        "specialist",
        [
            # The turns before the handoff were the triage agent's.
            "",
            "",
            AssistantMessage(tool_calls=[_call("h2", "transfer_to_billing_team")]),
            "All settled.",
        ],
    ),
    handoffs=[person("billing team")],
)

triage = Agent(
    "triage",
    model=ScriptedModel(
        "triage",
        [
            AssistantMessage(
                content="Working on it.",
                tool_calls=[
                    _call("c1", "lookup", key="plan"),
                    _call("c2", "delete_account", user="bob"),
                    _call("c3", "start_export", table="invoices"),
                    _call("c4", "ask_manager", question="refund?"),
                    _call("c5", "lookup", key=7),
                ],
            ),
            AssistantMessage(tool_calls=[_call("h1", "transfer_to_specialist")]),
        ],
    ),
    tools=[lookup, delete_account, start_export, ask_manager],
    handoffs=[specialist],
)


# ---------------------------------------------------------------------------- the corpus
# One agent per scenario of `tests.record_histories` (corpus-<scenario>.json). Tool, hook and
# agent names are unique across the module: one worker and one replayer serve them all.

GATES: dict[str, asyncio.Event] = {}
"""Tool calls (by id) whose body waits until the recorder sets the event: how the recorder
signals a long-running call's result while its starting activity is still running."""


async def _gate(call_id: str) -> None:
    gate = GATES.get(call_id)
    if gate is not None:
        await asyncio.wait_for(gate.wait(), 30)


@long_running_tool()
async def start_report(period: str, ctx: ToolContext) -> str:
    """Start building a report; its result is signalled in.

    Args:
        period: Which period.
    """
    await _gate(ctx.tool_call_id)
    return "report queued"


@tool
async def echo(text: str, ctx: ToolContext) -> str:
    """Echo, slowly: a run must live 2 s before it may continue as new.

    Args:
        text: What to echo.
    """
    await _gate(ctx.tool_call_id)
    await asyncio.sleep(0.3)
    return text


@tool
def take_note(note: str) -> str:
    """Keep a note.

    Args:
        note: The note.
    """
    return f"noted: {note}"


@tool(local=True)
def add(a: int, b: int) -> int:
    """Add two numbers (a local activity).

    Args:
        a: First.
        b: Second.
    """
    return a + b


@external_tool(deadline=timedelta(seconds=1))
def ask_briefly(question: str) -> str:
    """Ask someone who has one second to answer.

    Args:
        question: The question.
    """
    raise NotImplementedError


@tool(requires_approval=True, deadline=timedelta(seconds=1))
def wire_money(amount: int) -> str:
    """Wire money, if approved within a second.

    Args:
        amount: Euros.
    """
    return f"wired {amount} EUR"


@long_running_tool(deadline=timedelta(seconds=1))
def start_backup(volume: str) -> str:
    """Start a backup whose result must arrive within a second.

    Args:
        volume: Which volume.
    """
    return "backup started"


@external_tool(deadline=timedelta(seconds=1), fail_on_deadline=True)
def ask_or_fail(question: str) -> str:
    """Ask; no answer within a second fails the run.

    Args:
        question: The question.
    """
    raise NotImplementedError


@hook(name="corpus_reviewer")
def reviewer(context: HookContext) -> HookResult | None:
    if context.turn in (1, 2):
        note = UserMessage(content=f"Reviewer note {context.turn}: cite sources.", name="reviewer")
        return HookResult(inject=[note])
    return None


@hook(name="corpus_stopper")
def stopper(context: HookContext) -> HookResult:
    return HookResult(stop=True, reason="enough for today")


@hook(name="corpus_broken")
def broken(context: HookContext) -> None:
    raise ApplicationError("the hook's store is gone", non_retryable=True)


@hook(name="corpus_fast_watch", local=True)
def fast_watch(context: HookContext) -> None:
    return None


def _calls(*calls: ToolCall, content: str | None = None) -> AssistantMessage:
    return AssistantMessage(content=content, tool_calls=list(calls))


def _scripted(name: str, *replies: str | AssistantMessage) -> ScriptedModel:
    return ScriptedModel(name, list(replies))


parallel = Agent(
    "corpus-parallel",
    model=_scripted(
        "corpus-parallel",
        _calls(
            _call("p1", "lookup", key="plan"),  # over 1 KB: the next model call gets a ref
            _call("p2", "lookup", key=7),  # a schema error, back to the model
            ToolCall(id="p3", name="lookup", arguments="{not json"),
            _call("p4", "no_such_tool", x=1),
            _call("p5", "take_note", note="parallel"),
            content="Looking.",
        ),
        _calls(_call("p6", "lookup", key="7")),
        "Plan found.",
    ),
    tools=[lookup, take_note],
)

asker = Agent(
    "corpus-asker",
    model=_scripted(
        "corpus-asker", _calls(_call("m1", "ask_manager", question="refund?")), "Approved."
    ),
    tools=[ask_manager],
)

reporter = Agent(
    "corpus-reporter",
    model=_scripted(
        "corpus-reporter", _calls(_call("r1", "start_report", period="2026-Q3")), "Report ready."
    ),
    tools=[start_report],
)

approver = Agent(
    "corpus-approver",
    model=_scripted(
        "corpus-approver",
        _calls(
            _call("a1", "delete_account", user="bob"), _call("a2", "delete_account", user="eve")
        ),
        "Bob's account is gone; Eve's stays.",
    ),
    tools=[delete_account],
)

billing = Agent(
    "corpus-billing",
    model=_scripted(
        "corpus-billing",
        "",  # the front desk's turn
        _calls(_call("h3", "transfer_to_accounts", reason="refund over limit")),
        "Accounts refunded you.",
    ),
    handoffs=[person("accounts")],
)

front_desk = Agent(
    "corpus-front-desk",
    model=_scripted(
        "corpus-front-desk",
        _calls(
            _call("h1", "transfer_to_corpus-billing", reason="billing question"),
            _call("h2", "transfer_to_corpus-billing", reason="again"),  # one handoff only
        ),
    ),
    handoffs=[billing],
)

reviewed = Agent(
    "corpus-reviewed",
    model=_scripted(
        "corpus-reviewed",
        _calls(_call("v1", "take_note", note="draft")),
        "An answer.",
        "An answer, with sources.",
    ),
    tools=[take_note],
    hooks=[reviewer],
)

stopped = Agent(
    "corpus-stopped",
    model=_scripted("corpus-stopped", _calls(_call("s1", "take_note", note="last")), "never"),
    tools=[take_note],
    hooks=[stopper, broken],
)

CHAIN_TURNS = 20  # with 0.45 s a turn and 2 s a run at least: three runs or more

long_runner = Agent(
    "corpus-long",
    # Each reply streams a few words before its call (from corpus-v3 on): the stream's offset
    # grows, and each continue-as-new carries it to the next run.
    model=ScriptedModel(
        "corpus-long",
        [
            *(
                _calls(
                    _call(f"e{i}", "echo", text=f"{i:02d}" + "x" * 600), content=f"Echoing {i:02d}."
                )
                for i in range(CHAIN_TURNS)
            ),
            "Echoed everything.",
        ],
        chunk_delay=0.05,
    ),
    tools=[echo],
    max_turns=CHAIN_TURNS + 5,
)

timed_out = Agent(
    "corpus-deadline",
    model=_scripted(
        "corpus-deadline",
        _calls(
            _call("d1", "ask_briefly", question="now?"),
            _call("d2", "wire_money", amount=100),
            _call("d3", "start_backup", volume="home"),
        ),
        "Nobody answered in time.",
    ),
    tools=[ask_briefly, wire_money, start_backup],
)

failing_deadline = Agent(
    "corpus-deadline-fails",
    model=_scripted("corpus-deadline-fails", _calls(_call("f1", "ask_or_fail", question="now?"))),
    tools=[ask_or_fail],
)

fast = Agent(
    "corpus-fast",
    model=_scripted(
        "corpus-fast",
        _calls(_call("l1", "add", a=1, b=2), _call("l2", "lookup", key="fast")),
        "1 + 2 = 3.",
    ),
    tools=[add, lookup],
    hooks=[fast_watch],
    local_model=True,
)

resumable = Agent(
    "corpus-resumable",
    model=_scripted(
        "corpus-resumable",
        _calls(
            _call("n1", "take_note", note="before the export"),
            _call("x1", "ask_manager", question="export?"),
            _call("x2", "start_export", table="orders"),
        ),
        "Exported.",
    ),
    tools=[take_note, ask_manager, start_export],
)

chat = Agent(
    "corpus-chat",
    model=_scripted("corpus-chat", "Hello! How can I help?", "Paris.", "Berlin."),
)

# Live runs (from corpus-v3 on): replies streamed to the run as they are written.

STREAMED = " ".join(f"word{n}" for n in range(30)) + "."
"""30 words at 0.05 s: the model activity publishes a batch of deltas every 50 ms or so."""

streamer = Agent(
    "corpus-streamer", model=ScriptedModel("corpus-streamer", [STREAMED], chunk_delay=0.05)
)

STEER = "Short answer, please."
RAMBLE = " ".join(f"weather{n}" for n in range(400))
"""Twenty seconds of streaming: the recorder interrupts it."""


def _steered(request: ModelRequest) -> str | AssistantMessage:
    """A note first; then a long answer, unless the last message asks for a short one."""
    last = request.messages[-1]
    if isinstance(last, UserMessage) and last.content == STEER:
        return "Sunny."
    if not any(isinstance(m, AssistantMessage) for m in request.messages):
        return _calls(_call("i1", "take_note", note="weather asked"))
    return RAMBLE


steered = Agent(
    "corpus-steered",
    model=ScriptedModel("corpus-steered", _steered, chunk_delay=0.05),
    tools=[take_note],
)

thread = Agent(
    "corpus-thread",
    model=ScriptedModel(
        "corpus-thread", ["Hello! What can I do for you today?", "It is noon."], chunk_delay=0.05
    ),
)

# Sub-agents, budgets and MCP (recorded in corpus-v3 after its first scenarios).

researcher = Agent("corpus-researcher", model=_scripted("corpus-researcher", "notes on the topic"))


@tool(requires_approval=True)
def deploy(target: str) -> str:
    """Deploy.

    Args:
        target: Where.
    """
    return f"deployed to {target}"


deployer = Agent(
    "corpus-deployer",
    model=_scripted("corpus-deployer", _calls(_call("d1", "deploy", target="prod")), "shipped"),
    tools=[deploy],
)
lead = Agent(
    "corpus-lead",
    model=_scripted(
        "corpus-lead",
        _calls(
            _call("s1", "corpus-researcher", input="history of X"),
            _call("s2", "corpus-researcher", input="state of X"),
            _call("s3", "corpus-deployer", input="ship X"),
        ),
        "all done",
    ),
    tools=[researcher.as_tool(), deployer.as_tool()],
)
budgeted = Agent(
    "corpus-budgeted",
    model=_scripted(
        "corpus-budgeted",
        _calls(
            _call("b1", "corpus-researcher", input="one"),
            _call("b2", "corpus-researcher", input="two"),
        ),
        "never said: the budget stops the run first",
    ),
    tools=[researcher.as_tool()],
    budget=Budget(max_model_calls=3),
)
mcp_user = Agent(
    "corpus-mcp",
    model=_scripted(
        "corpus-mcp",
        _calls(_call("m1", "add", a=2, b=3), _call("m2", "shout", text="five")),
        "2 + 3 = 5, FIVE",
    ),
    tools=[MCPServer("corpus-files", command=[sys.executable, "-m", "tests.mcp_server"])],
)


@tool
def read_page(page: int) -> str:
    """Read a page of the long report.

    Args:
        page: Which page.
    """
    return f"page {page}: " + "words " * 400


COMPACT_PAGES = 14


def _next_page(request: ModelRequest) -> str | AssistantMessage:
    """Reads page after page (the next after the last call in its window), then answers;
    asked to summarise, says how much it read."""
    if request.instructions == SUMMARY_INSTRUCTIONS:
        return f"Summary: {len(request.messages[0].content)} characters of dull pages."
    read = [
        int(c.id[1:])
        for m in request.messages
        if isinstance(m, AssistantMessage)
        for c in m.tool_calls
    ]
    page = max(read) + 1 if read else 0
    if page >= COMPACT_PAGES:
        return "I read the whole report."
    return AssistantMessage(tool_calls=[_call(f"p{page}", "read_page", page=page)])


compacting = Agent(
    "corpus-compact",
    model=ScriptedModel("corpus-compact", _next_page),
    tools=[read_page],
    max_turns=COMPACT_PAGES + 2,
    # A small window, so that 14 pages of 2.4 KB compact several times (summaries included).
    context=ContextPolicy(window_tokens=4_000, reply_tokens=500, summary_tokens=200, keep_turns=2),
)


counted = Agent(
    "corpus-count",
    # A provider with a token-counting endpoint (the recorder's local server): near the limit
    # each call's prompt is counted (`model.count_tokens`) before the window is planned.
    model="anthropic:fake-model",
    tools=[read_page],
    max_turns=COMPACT_PAGES + 2,
    settings=ModelSettings(max_tokens=500),
    context=ContextPolicy(window_tokens=4_000, summary_tokens=200, keep_turns=2),
)

trimmed = Agent(
    "corpus-trim",
    # The provider trims (OpenAI Responses' truncation): whole conversations, no summaries.
    model="openai:fake-model",
    tools=[read_page],
    max_turns=COMPACT_PAGES + 2,
    settings=ModelSettings(max_tokens=500),
    context=ContextPolicy(window_tokens=4_000, server_side=True),
)


class CityAnswer(BaseModel):
    """The typed answer of `typed` (issue 19 part 1)."""

    name: str
    population: int


typed = Agent(
    "corpus-typed",
    # The first answer does not validate (population is text): it goes back with the error.
    model=ScriptedModel(
        "corpus-typed",
        ['{"name": "Paris", "population": "many"}', '{"name": "Paris", "population": 2100000}'],
    ),
    output_type=CityAnswer,
)


@tool
async def rest() -> str:
    """Rest a while."""
    # Past the 2 s a run lives before it may continue as new (workflows/life.py MIN_RUN_AGE).
    await asyncio.sleep(2.5)
    return "rested"


typed_across_runs = Agent(
    "corpus-typed-can",
    # Two answers that do not validate, each followed by a rest that lets the run continue as
    # new: the count of them crosses to the next run (`output_failures`); the third validates.
    model=ScriptedModel(
        "corpus-typed-can",
        [
            "Paris, I think",
            AssistantMessage(tool_calls=[_call("r1", "rest")]),
            '{"name": "Paris", "population": "many"}',
            AssistantMessage(tool_calls=[_call("r2", "rest")]),
            '{"name": "Paris", "population": 2100000}',
        ],
    ),
    tools=[rest],
    output_type=CityAnswer,
    output_retries=2,
)


def _no_secrets(text: str) -> str | None:
    return "it asks for a password" if "password" in text else None


def _no_drops(name: str, arguments: dict[str, object]) -> str | None:
    return f"{name} is not allowed" if name == "drop_table" else None


def _no_shouting(text: str) -> bool:
    return text.isupper()


@tool
def drop_table(table: str) -> str:
    """Drop a table.

    Args:
        table: Its name.
    """
    return f"dropped {table}"


guarded = Agent(
    "corpus-guarded",
    # The input passes, the tool call is refused, the answer trips the output guardrail.
    model=ScriptedModel(
        "corpus-guarded",
        [
            AssistantMessage(tool_calls=[_call("g1", "drop_table", table="users")]),
            "I MAY NOT DROP IT.",
        ],
    ),
    tools=[drop_table],
    guardrails=[
        input_guardrail(_no_secrets),
        tool_guardrail(_no_drops),
        output_guardrail(_no_shouting),
    ],
)


def _down(request: ModelRequest) -> str:
    raise ApplicationError("the primary model is down", non_retryable=True)


falling_back = Agent(
    "corpus-fallback",
    # The primary fails for good at once; the fallback answers (a `model_fallback` event).
    model=[
        ScriptedModel("corpus-fallback-primary", _down),
        ScriptedModel("corpus-fallback-backup", ["the backup answers"]),
    ],
)

agents = [
    counted,
    trimmed,
    falling_back,
    guarded,
    typed,
    typed_across_runs,
    compacting,
    lead,
    budgeted,
    mcp_user,
    triage,
    parallel,
    asker,
    reporter,
    approver,
    front_desk,
    reviewed,
    stopped,
    long_runner,
    timed_out,
    failing_deadline,
    fast,
    resumable,
    chat,
    streamer,
    steered,
    thread,
]
