"""What the workflow sends to its model, tool and hook activities and what they answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from . import limits
from ._attachments import Attachment
from ._conversation import AssistantMessage, Data, Extensible, Message, StatusEvent, Usage
from ._guardrails import GuardrailRefusal
from ._output import OutputFormat
from ._window import ContextWindow, ServerContext


class ToolSpec(Data):
    """A tool as a model sees it: derived from the function, never written by hand."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ModelSettings(Extensible):
    """Sampling settings passed to the provider when set; `extra` goes through untouched."""

    _new_fields = ("prompt_cache",)

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    tool_choice: Literal["auto", "required", "none"] | None = None
    parallel_tool_calls: bool | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    prompt_cache: bool = True
    """Use the provider's prompt cache: Anthropic cache breakpoints on the system prompt, the
    tools and the conversation so far; OpenAI's `prompt_cache_key`, one per run. Off for a
    compatible server that refuses those fields."""


class TranscriptRef(Data):
    """Says that `messages` continue a conversation whose first `length` messages the
    activity side already has (or fetches from the workflow with the `transcript` query).

    Sending only what is new keeps a run's history growing linearly: the whole conversation
    in every model call's input makes it grow quadratically (measured: 2.9 KB a turn at 20
    turns, 9.3 KB at 100)."""

    workflow_id: str
    conversation_id: str
    """Stays the same across continue-as-new; new for every fresh start and fork."""
    length: int


TRANSCRIPT_MISS = "TranscriptMiss"
"""The error type of a local model call or hook whose worker lacks the conversation: a local
activity cannot query its own run (it holds the run's workflow task open), so the workflow
sends the conversation whole instead."""


class TranscriptQuery(Data):
    """Input of the `transcript` query: a page of prompt messages, bounded in bytes so that
    a long conversation never exceeds a gRPC message."""

    start: int = 0
    end: int
    max_bytes: int = limits.TRANSCRIPT_PAGE_BYTES


class TranscriptPage(Data):
    messages: list[Message]
    next: int


class ModelRequest(Extensible):
    """One model call. `model` is `provider:name`, for example `openai:gpt-4.1`."""

    _new_fields = (
        "content_refs",
        "agent",
        "stream_turn",
        "cache_key",
        "window",
        "output",
        "server_context",
    )

    model: str
    agent: str | None = None
    """The agent speaking: the activity stamps it on the reply, so the reply it returns (and
    keeps for the next call) is the message exactly as the workflow records it."""
    instructions: str | None = None
    messages: list[Message]
    transcript: TranscriptRef | None = None
    """When set, `messages` holds only the messages after the transcript's first `length`.
    Providers always receive the whole conversation."""
    content_refs: dict[int, str] = Field(default_factory=dict)
    """With `transcript`: the tool messages in `messages` sent without content, by index. Each
    content is the tool activity's result named by the ref (`ToolOutcome.ref`), which the
    activity side takes from its worker's cache or, on a miss, from the workflow."""
    tools: list[ToolSpec] = Field(default_factory=list)
    settings: ModelSettings = Field(default_factory=ModelSettings)
    stream_turn: int | None = None
    """When set, the call streams: the activity publishes the reply's `ModelDelta`s for this
    turn to the run's observers while it runs. The recorded reply is the same either way."""
    cache_key: str | None = None
    """Set by the model activity, not the workflow: the run's workflow id (the same across
    continue-as-new, new for a fork), which providers pass as their prompt-cache key (OpenAI's
    `prompt_cache_key`) so a run's calls share a cache."""
    window: ContextWindow | None = None
    """The part of the conversation the provider is sent (the agent's context policy); None:
    all of it. `messages` and `transcript` still describe the whole conversation."""
    output: OutputFormat | None = None
    """The agent's `output_type`: the provider is asked for a final answer of this shape (its
    structured outputs, or a forced tool where the model lacks them). None: plain text."""
    server_context: ServerContext | None = None
    """The provider trims the prompt itself (Anthropic's context editing, OpenAI Responses'
    truncation); None: the window above is all the trimming."""


class ModelResponse(Data):
    message: AssistantMessage
    usage: Usage = Field(default_factory=Usage)
    model: str | None = None
    """The model name the provider reported, which may differ from the one asked for."""


class ToolInvocation(Extensible):
    """Input of a tool activity."""

    _new_fields = ("guardrails",)

    tool_call_id: str
    name: str
    arguments: str
    agent: str
    guardrails: list[str] = Field(default_factory=list)
    """The agent's tool guardrails the activity checks the call with before the tool runs
    (the `tool-guardrails-in-activity` patch); a refusal comes back as `ToolOutcome.refused`."""


class ToolOutcome(Extensible):
    """Output of a tool activity: the text for the model and any progress events."""

    _new_fields = ("ref", "attachments", "refused")

    content: str
    is_error: bool = False
    events: list[StatusEvent] = Field(default_factory=list)
    ref: str | None = None
    """Names this attempt's content in its worker's result cache: the next model call then
    carries the name instead of the content, which history already holds once, here."""
    attachments: list[Attachment] = Field(default_factory=list)
    """Images and files the tool returned; large bytes already moved to payload storage."""
    refused: GuardrailRefusal | None = None
    """A guardrail of `ToolInvocation.guardrails` stopped the call: the tool did not run."""


class HookContext(Data):
    """What a hook sees: the conversation so far, ending with the model's latest reply."""

    agent: str
    """The agent that made the reply."""
    turn: int
    """How many model calls the run has made, the one just made included: 1 after the first.
    It goes on counting across continue-as-new, and a run resumed or forked from a snapshot
    starts from the snapshot's count. The same count `status` reports and `max_turns` limits."""
    workflow_id: str
    messages: list[Message]


class HookResult(Data):
    inject: list[Message] = Field(default_factory=list)
    stop: bool = False
    reason: str | None = None


class HookInvocation(Extensible):
    """Input of a hook activity: a reference to the conversation, not a copy of it."""

    _new_fields = ("messages",)

    hook: str
    agent: str
    turn: int
    transcript: TranscriptRef
    messages: list[Message] | None = None
    """The conversation itself, sent only to a local hook whose worker lacks it (a local
    activity cannot query its own run)."""
