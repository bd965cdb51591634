"""What the workflow sends to a model activity and what it gets back."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ._messages import AssistantMessage, Message, Usage, _Data, _Extensible


class ToolSpec(_Data):
    """A tool as a model sees it: derived from the function, never written by hand."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ModelSettings(_Data):
    """Sampling settings passed to the provider when set; `extra` goes through untouched."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    tool_choice: Literal["auto", "required", "none"] | None = None
    parallel_tool_calls: bool | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class TranscriptRef(_Data):
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


class TranscriptQuery(_Data):
    """Input of the `transcript` query: a page of prompt messages, bounded in bytes so that
    a long conversation never exceeds a gRPC message."""

    start: int = 0
    end: int
    max_bytes: int = 1_000_000


class TranscriptPage(_Data):
    messages: list[Message]
    next: int


class ModelRequest(_Extensible):
    """One model call. `model` is `provider:name`, for example `openai:gpt-4.1`."""

    _new_fields = ("content_refs",)

    model: str
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


class ModelResponse(_Data):
    message: AssistantMessage
    usage: Usage = Field(default_factory=Usage)
    model: str | None = None
    """The model name the provider reported, which may differ from the one asked for."""
