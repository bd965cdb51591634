"""What a guardrail activity is asked and answers (README "Guardrails")."""

from __future__ import annotations

from typing import Literal

from ._conversation import Data

GuardrailKind = Literal["input", "output", "tool"]


class GuardrailCall(Data):
    """Input of a guardrail activity (`guardrail.<name>`): the text it checks (the user's
    new messages, or the final answer), or the tool call it may refuse."""

    guardrail: str
    kind: GuardrailKind
    agent: str
    text: str = ""
    tool: str | None = None
    arguments: str | None = None
    """The tool call's arguments, as the model sent them (JSON text)."""


class GuardrailVerdict(Data):
    """What a guardrail answers; an agent used as a guardrail answers in this shape."""

    tripped: bool
    reason: str = ""


class GuardrailRefusal(Data):
    """A tool guardrail that stopped a call inside the tool's own activity (a passing check
    answers nothing): it refused the call, or it could not check it (`error`: the run fails,
    as when a guardrail activity fails, since a check that could not run is not a pass)."""

    guardrail: str
    reason: str = ""
    error: str | None = None
