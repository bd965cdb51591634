"""The summary call's payloads: what falls out of a model's window, folded into a summary by a
model call of its own (`model.summarize`), recorded in history like any activity; and the
count call's (`model.count_tokens`)."""

from __future__ import annotations

from pydantic import Field

from ._activities import ModelRequest, ModelSettings, TranscriptRef
from ._conversation import Data, Message, Usage


class SummaryRequest(Data):
    """Input of `model.summarize`: fold messages `start:end` into the previous summary."""

    model: str
    instructions: str
    transcript: TranscriptRef | None = None
    """The conversation's first `end` messages, kept by the model activity's worker."""
    messages: list[Message] = Field(default_factory=list)
    """`start:end` themselves, for a local model call (it cannot query its run)."""
    start: int
    end: int
    previous: str | None = None
    input_tokens: int
    """Each summary request stays under this estimate: longer spans are folded in parts."""
    clip_chars: int = 1_000
    settings: ModelSettings = Field(default_factory=ModelSettings)


class SummaryResponse(Data):
    summary: str
    usage: Usage = Field(default_factory=Usage)
    calls: int = 1
    """Provider calls it took (a long span is summarised in parts, each bounded)."""


class CountRequest(Data):
    """Input of `model.count_tokens`: the call whose prompt the provider counts, and the
    workflow's estimate of it, recorded beside the count that replaces it."""

    request: ModelRequest
    estimate: int
