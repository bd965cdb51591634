"""The model's window over the conversation: which part of it a model call carries, so that a
run that lives for days never sends more than the model's context holds (issue 19 part 5).

The record keeps everything; a window (`ContextWindow`) leaves out what comes before its `start`
(a summary stands in its place) and shortens tool outputs before `clipped_before`. `Window`
plans, it never calls: when the estimate passes `compact_at` of the budget, it compacts in one
step down to `compact_to`: old tool outputs shortened first, then the oldest turns folded into
the summary, the last `keep_turns` replies kept whole. Between compactions the window only grows
at its end, so its prefix stays the same and the provider's prompt cache keeps paying. A cut
never falls between a tool call and its result: the window starts at a user or assistant
message, never at a tool result. Plain Python, unit-tested without a server
(tests/test_window.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Pure data models.
    from durable_agent.wire import (
        AssistantMessage,
        ContextPolicy,
        ContextWindow,
        Item,
        Message,
        StatusEvent,
        ToolMessage,
        clip,
        estimate_tokens,
    )

KNOWN_WINDOWS: tuple[tuple[str, int], ...] = (
    ("gpt-4.1", 1_047_576),
    ("gpt-5", 400_000),
    ("gpt-4o", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("claude", 200_000),
)
"""Context sizes by model-name prefix, from the providers' model pages; others get
`DEFAULT_WINDOW`. `ContextPolicy.window_tokens` says it for any model."""
DEFAULT_WINDOW = 128_000
DEFAULT_REPLY = 4_096
HEAD_TOKENS = 32
"""The heading or note at the head of a window that starts later than the conversation."""
RATIO_RANGE = (0.5, 4.0)
"""How far the provider's count may scale our estimate: outside it a usage figure is taken for
a placeholder (a compatible server reporting a constant) rather than a measurement."""
TOO_LONG_RATIO_STEP = 1.25
"""After a provider's "too long" refusal our estimate was low: it grows by this at least."""
COMPACTED: Final = "context_compacted"


@dataclass(frozen=True)
class Limits:
    """In tokens: what the prompt may take (window minus the reply's margin), when to compact,
    and down to what."""

    budget: int
    at: int
    to: int


def limits(policy: ContextPolicy, model: str, max_tokens: int | None) -> Limits:
    name = model.partition(":")[2] or model
    window = policy.window_tokens or next(
        (size for prefix, size in KNOWN_WINDOWS if name.startswith(prefix)), DEFAULT_WINDOW
    )
    reply = policy.reply_tokens or max_tokens or DEFAULT_REPLY
    budget = max(1, window - reply)
    return Limits(budget, int(budget * policy.compact_at), int(budget * policy.compact_to))


@dataclass(frozen=True)
class Compaction:
    """A planned step: the window after it, and the messages to fold into the summary."""

    window: ContextWindow
    fold: tuple[int, int] | None
    before: int
    """The estimate of the window before this step, in tokens."""
    after: int
    """...and after it (with the summary at its length limit)."""


class Window:
    def __init__(self) -> None:
        self.current = ContextWindow()
        self.summary: str | None = None
        self.ratio = 1.0
        """Provider tokens per estimated token, from the last call's usage."""
        self._sizes: list[int] = []
        self._clipped: list[int] = []

    # ------------------------------------------------------------------ state

    def restore(self, items: list[Item]) -> None:
        """After continue-as-new or from a snapshot: the last compaction the record holds."""
        event = next(
            (i for i in reversed(items) if isinstance(i, StatusEvent) and i.kind == COMPACTED),
            None,
        )
        if event is None:
            return
        data = event.data
        self.current = ContextWindow(
            start=data["start"],
            clipped_before=data["clipped_before"],
            clip_chars=data["clip_chars"],
            summary_id=data["summary_id"],
            replies_before=data.get("replies_before", 0),
        )
        self.summary = data.get("summary")
        self.ratio = float(data.get("ratio", 1.0))

    def apply(self, step: Compaction, summary: str | None) -> ContextWindow:
        """The step is taken (its summary made, if it folded any messages)."""
        self.current = step.window
        self.summary = summary if step.fold is not None else self.summary
        return self.current

    def event_data(self, step: Compaction) -> dict[str, Any]:
        """What the `context_compacted` event records: enough to restore the window."""
        window = self.current
        return {
            "start": window.start,
            "clipped_before": window.clipped_before,
            "clip_chars": window.clip_chars,
            "summary_id": window.summary_id,
            "replies_before": window.replies_before,
            "summary": self.summary,
            "folded": list(step.fold) if step.fold else None,
            "tokens_before": step.before,
            "tokens_after": step.after,
            "ratio": round(self.ratio, 4),
        }

    def measured(self, input_tokens: int, sent: int) -> None:
        """The provider counted `input_tokens` for a prompt we estimated at `sent` tokens."""
        if input_tokens <= 0 or sent <= 0:
            return
        ratio = input_tokens / (sent / self.ratio)
        low, high = RATIO_RANGE
        if low <= ratio <= high:
            self.ratio = ratio

    def too_long(self) -> None:
        """The provider refused the prompt as too long: our estimate was low."""
        self.ratio = min(RATIO_RANGE[1], self.ratio * TOO_LONG_RATIO_STEP)

    # ------------------------------------------------------------------ estimates

    def estimate(self, prompt: list[Message], overhead: int, window: ContextWindow) -> int:
        """Tokens of a call carrying `prompt` under `window`, instructions and tools included."""
        self._measure(prompt)
        head = self._head(window.start, self.summary if window.summary_id else None)
        raw = overhead + head + self._span(window.start, len(prompt), window.clipped_before)
        return int(raw * self.ratio)

    def _measure(self, prompt: list[Message]) -> None:
        """Each message is estimated once: the conversation only grows at its end."""
        for message in prompt[len(self._sizes) :]:
            whole = estimate_tokens(message.model_dump_json())
            self._sizes.append(whole)
            shortened = clip(message, self.current.clip_chars)
            self._clipped.append(
                whole if shortened is message else estimate_tokens(shortened.model_dump_json())
            )

    def _span(self, start: int, end: int, clipped_before: int) -> int:
        middle = max(start, min(clipped_before, end))
        return sum(self._clipped[start:middle]) + sum(self._sizes[middle:end])

    @staticmethod
    def _head(start: int, summary: str | None) -> int:
        if start == 0:
            return 0
        return HEAD_TOKENS + (estimate_tokens(summary) if summary else 0)

    # ------------------------------------------------------------------ the plan

    def due(
        self, policy: ContextPolicy, limit: Limits, prompt: list[Message], overhead: int
    ) -> bool:
        """The window's estimate has passed `compact_at` of the budget."""
        return self.estimate_now(policy, prompt, overhead) > limit.at

    def newest(self, since: int) -> int:
        """The estimate of the messages from `since` on (measured already), scaled."""
        return int(sum(self._sizes[max(since, self.current.start) :]) * self.ratio)

    def estimate_now(self, policy: ContextPolicy, prompt: list[Message], overhead: int) -> int:
        """The estimate of a call carrying `prompt` under the current window and `policy`."""
        current = self.current
        if self._sizes and current.clip_chars != policy.tool_output_chars:
            self._sizes, self._clipped = [], []  # estimates of clipped outputs changed
        self.current = current = current.model_copy(update={"clip_chars": policy.tool_output_chars})
        return self.estimate(prompt, overhead, current)

    def plan(
        self,
        policy: ContextPolicy,
        limit: Limits,
        prompt: list[Message],
        overhead: int,
        force: bool = False,
        room: bool = True,
    ) -> Compaction | None:
        """The next compaction, or None while the window fits (`force`: the provider refused
        it, so compact whatever the estimate says; `room`: leave room for large turns, see
        `_target`; False plans as runs recorded before it did)."""
        if not self.due(policy, limit, prompt, overhead) and not force:
            return None
        current = self.current
        before = self.estimate(prompt, overhead, current)
        new_head = HEAD_TOKENS + (policy.summary_tokens if policy.summarize else 0)
        old_head = self._head(current.start, self.summary if current.summary_id else None)
        n = len(prompt)
        replies = [i for i in range(current.start, n) if isinstance(prompt[i], AssistantMessage)]
        newest = replies[-1] if replies and room else n
        target = self._target(policy, limit, overhead, new_head, newest)
        for keep in range(min(policy.keep_turns, len(replies)), 0, -1):
            protected = replies[-keep]
            clipped = max(current.clipped_before, protected)
            if old_head + self._span(current.start, n, clipped) <= target:
                return self._step(policy, current.start, clipped, before, overhead, prompt)
            for cut in range(current.start + 1, protected + 1):
                if isinstance(prompt[cut], ToolMessage):
                    continue  # never half a pair: a window starts at a call, not its result
                if new_head + self._span(cut, n, clipped) <= target:
                    return self._step(policy, cut, clipped, before, overhead, prompt)
        # Even the last reply and its results do not fit whole: keep them, shortened.
        last = replies[-1] if replies else current.start
        return self._step(policy, last, n, before, overhead, prompt)

    def _target(
        self, policy: ContextPolicy, limit: Limits, overhead: int, new_head: int, last: int
    ) -> float:
        """What the messages may take after a compaction, in estimated tokens: `compact_to` of
        the budget, and less when turns are large, so that `keep_turns` more turns the size of
        the last one fit before the next compaction. Without it a compaction left only
        `compact_at - compact_to` of room: with 100 KB tool outputs under a 128k window that
        is under two turns, and tests/test_long_conversation.py's 300 turns compacted 147
        times (every other turn); now 74 (every fourth, the most such turns allow). Never below
        the last turn kept whole, which the window must carry."""
        newest = sum(self._sizes[last:])
        to = limit.to / self.ratio - overhead
        room = limit.at / self.ratio - overhead - policy.keep_turns * newest
        return min(to, max(room, new_head + newest))

    def _step(
        self,
        policy: ContextPolicy,
        start: int,
        clipped_before: int,
        before: int,
        overhead: int,
        prompt: list[Message],
    ) -> Compaction:
        current = self.current
        fold = (current.start, start) if start > current.start and policy.summarize else None
        window = ContextWindow(
            start=start,
            clipped_before=clipped_before,
            clip_chars=policy.tool_output_chars,
            summary_id=current.summary_id + 1 if fold else current.summary_id,
            replies_before=current.replies_before
            + sum(isinstance(m, AssistantMessage) for m in prompt[current.start : start]),
        )
        if start > current.start and not policy.summarize:
            window.summary_id = 0
        head = HEAD_TOKENS + (policy.summary_tokens if fold or window.summary_id else 0)
        after = int(
            (overhead + (head if start else 0) + self._span(start, len(prompt), clipped_before))
            * self.ratio
        )
        return Compaction(window=window, fold=fold, before=before, after=after)
