"""The model's window over a long conversation: the agent's policy, the window one model call
sees, and the summary call that shortens it.

The durable record keeps every message; a window only says which of them a model call carries
and how: messages before `start` are left out (a summary of them stands first), tool outputs
before `clipped_before` are shortened. The workflow plans windows (`workflows/window.py`); the
model activity applies one (`windowed`) to the conversation its worker keeps whole.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from ._conversation import Data, Extensible, Message, ToolMessage, UserMessage

WINDOW_MISS = "WindowMiss"
"""The error type of a model call whose worker lacks the window's summary (another worker, a
restart): the workflow sends the call again with the summary in it."""

CONTEXT_TOO_LONG = "ContextTooLong"
"""The error type of a provider's refusal of a prompt longer than the model's context (OpenAI's
400 `context_length_exceeded`, Anthropic's 400 "prompt is too long"): the workflow compacts the
window and tries once more."""

SUMMARY_INSTRUCTIONS = (
    "You compress the earlier part of a long conversation between a user, an assistant and its "
    "tools into a summary that replaces it in the assistant's context. Keep what later turns "
    "may need: the user's goals and instructions, decisions made, facts learned from tool "
    "results (names, numbers, identifiers), open questions and what remains to do. Fold in the "
    "previous summary, if one is given. Answer with the summary only, as short as it can be."
)

SUMMARY_HEADING = "Summary of the earlier conversation (left out of this window):"
LEFT_OUT_NOTE = "[The earlier conversation was left out to fit the model's context window.]"


class ContextPolicy(Data):
    """How an agent's model sees a conversation longer than its context window (README
    "Context window"). The default is on; `Agent(context=None)` sends the whole conversation."""

    window_tokens: int | None = Field(default=None, gt=0)
    """The model's context size in tokens; None: known for common models, else 128,000."""
    reply_tokens: int | None = Field(default=None, gt=0)
    """Kept free for the reply; None: the agent's `settings.max_tokens`, else 4,096."""
    compact_at: float = Field(default=0.85, gt=0, le=1)
    """Compact when the window's estimate passes this share of (window - reply)."""
    compact_to: float = Field(default=0.5, gt=0, le=1)
    """...down to this share: the window then grows turn by turn with its prefix unchanged, so
    the provider's prompt cache keeps paying, until the next compaction. Lower when turns are
    large: a compaction leaves room for `keep_turns` more turns the size of the last."""
    keep_turns: int = Field(default=3, ge=1)
    """The last model replies, with everything after them, stay whole while they fit."""
    tool_output_chars: int = Field(default=1_000, ge=0)
    """Older tool outputs are shortened to their first this-many characters first."""
    summarize: bool = True
    """Summarise what falls out of the window with a model call (`model.summarize`, recorded
    in history); False leaves it out with a note."""
    summary_tokens: int = Field(default=1_024, gt=0)
    """The summary's length limit (its `max_tokens`)."""
    summary_model: str | None = None
    """The model that summarises; None: the agent's own."""
    count_tokens: bool = True
    """Near the limit, count the prompt with the provider's token-counting endpoint (Anthropic
    `messages.count_tokens`, OpenAI Responses `input_tokens.count`; `model.count_tokens`,
    recorded) before compacting or sending; other providers, or False: the estimate."""
    server_side: bool = False
    """Leave trimming to the provider where it offers it: Anthropic's context editing (old tool
    results cleared past `compact_at` of the window, the last `keep_turns` tool uses kept) and
    OpenAI Responses' `truncation="auto"`. Those calls carry the whole conversation and no
    summary is made; Chat Completions has no such option and keeps this window. A "too long"
    refusal still compacts the window here and tries once more."""

    @model_validator(mode="after")
    def _at_above_to(self) -> ContextPolicy:
        if self.compact_to > self.compact_at:
            raise ValueError("compact_to must not be above compact_at")
        return self


class ContextWindow(Extensible):
    """Which part of the conversation one model call carries, and how."""

    _new_fields = ("summary", "replies_before")

    start: int = 0
    """Messages before this index are left out; a summary (or a note) stands in their place."""
    clipped_before: int = 0
    """Tool outputs before this index are shortened to `clip_chars` characters."""
    clip_chars: int = 1_000
    summary_id: int = 0
    """Which summary stands first (0: none). The model activity's worker keeps the latest."""
    summary: str | None = None
    """The summary's text, sent when the activity side may lack it."""
    replies_before: int = 0
    """The model's replies left out before `start`: a scripted model counts its turns with
    them (the request a provider gets keeps its window, which providers otherwise ignore)."""


class ServerContext(Data):
    """A model call whose provider trims the prompt itself (`ContextPolicy.server_side`)."""

    trigger_tokens: int = Field(gt=0)
    """The provider starts trimming once the prompt passes this many tokens."""
    keep_tool_uses: int = Field(ge=0)
    """The last tool uses it keeps whole (Anthropic's `keep`)."""
    clear_at_least: int = Field(ge=0)
    """Trim only when it frees this many tokens: a trim changes the prompt's prefix and the
    provider's prompt cache pays again only from there (Anthropic's `clear_at_least`)."""


class TokenCount(Data):
    """Output of `model.count_tokens`."""

    input_tokens: int | None = None
    """The provider's count of the prompt; None: it has no counting endpoint."""


def estimate_tokens(text: str) -> int:
    """About four characters a token: what tokenizers give for English and JSON. The workflow
    scales it by what the provider reports (`Window.measured`)."""
    return len(text) // 4 + 1


def clip(message: Message, chars: int) -> Message:
    """A tool output shortened to its first `chars` characters, still paired with its call."""
    if not isinstance(message, ToolMessage) or len(message.content) <= chars:
        return message
    left_out = len(message.content) - chars
    note = (
        f"\n[{left_out} more characters of this tool output were left out to fit the model's "
        "context window; the run's history keeps them.]"
    )
    return message.model_copy(update={"content": message.content[:chars] + note})


def windowed(messages: list[Message], window: ContextWindow, summary: str | None) -> list[Message]:
    """What a model call carries of `messages` under `window`."""
    kept = [
        clip(m, window.clip_chars) if i < window.clipped_before else m
        for i, m in enumerate(messages[window.start :], start=window.start)
    ]
    if window.start == 0:
        return kept
    head = f"{SUMMARY_HEADING}\n{summary}" if summary else LEFT_OUT_NOTE
    return [UserMessage(content=head), *kept]
