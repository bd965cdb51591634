"""What an agent tool's answer may hold as `output`: the typed value of whichever agent the run
ends with, which after a handoff (`handoffs=`) need not be the agent the tool is named after.

The outputSchema is declared from the Agent definitions, walked statically: the called agent
and every agent its handoffs reach can end the run (sub-agents and guardrail agents answer to
a run, never end it). `output` is the `anyOf` of their distinct output schemas, their `$defs`
merged at the root with colliding names renamed. It is required only when every one of them
is typed; when one can answer in plain text, `output` is optional and present exactly when the
agent that answered (`agent` in the result) is typed. We keep an outputSchema in that case
rather than dropping it: the run's id, outcome and usage stay structured and validated, and a
client still learns every type an answer can carry.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..authoring._agent import Agent

__all__ = ["OUTPUT_DESCRIPTION", "ToolOutput", "final_agents", "merge_defs"]

OUTPUT_DESCRIPTION = (
    "The answer as the output type of the agent that gave it (validated by the run); absent"
    " when that agent answers in plain text."
)
_DEFS = "#/$defs/"


def final_agents(agent: Agent) -> dict[str, Agent]:
    """`agent` and every agent its handoffs reach, by name: those a run of it can end with."""
    found: dict[str, Agent] = {}
    stack = [agent]
    while stack:
        current = stack.pop()
        if current.name in found:
            continue
        found[current.name] = current
        stack.extend(h.agent for h in current.handoff_list if h.agent is not None)
    return found


@dataclass(frozen=True)
class ToolOutput:
    """One agent tool's answers: the agents that can give them and the schema they fit."""

    finals: dict[str, Agent]
    required: bool
    """Every agent the run can end with is typed: each answer carries `output`."""
    schema: dict[str, Any]

    @classmethod
    def of(cls, agent: Agent, result_schema: dict[str, Any]) -> ToolOutput:
        """`result_schema` (the structured result's, without `output`) with `output` added."""
        finals = final_agents(agent)
        typed = [a.output.adapter.json_schema() for a in finals.values() if a.output is not None]
        schema = copy.deepcopy(result_schema)
        required = len(typed) == len(finals)
        if typed:
            defs: dict[str, Any] = schema.pop("$defs", {})
            options: list[dict[str, Any]] = []
            for one in typed:
                merged = merge_defs(one, defs)
                if merged not in options:  # two agents of one output type
                    options.append(merged)
            output = options[0] if len(options) == 1 else {"anyOf": options}
            schema["properties"]["output"] = {**output, "description": OUTPUT_DESCRIPTION}
            if required:
                schema["required"] = [*schema["required"], "output"]
            if defs:
                schema["$defs"] = defs
        return cls(finals=finals, required=required, schema=schema)


def merge_defs(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`schema` without its `$defs`, which join `defs` (the root's, where clients resolve
    `$ref`s); a definition whose name `defs` already holds for another shape is renamed
    (`Stop` -> `Stop_2`) along with the `$ref`s that point at it."""
    body = copy.deepcopy(schema)
    own: dict[str, Any] = body.pop("$defs", {})
    renames: dict[str, str] = {}
    # Renaming one definition changes those that refer to it, which may then collide in turn:
    # repeat until none does (each round renames at least one more of a finite set).
    while True:
        rewritten = {renames.get(n, n): _renamed(d, renames) for n, d in own.items()}
        clashes = [
            n
            for n in own
            if n not in renames and n in defs and defs[n] != rewritten[renames.get(n, n)]
        ]
        if not clashes:
            break
        taken = set(defs) | set(own) | set(renames.values())
        for name in clashes:
            # A third agent of a type already merged under a new name takes that name again.
            same = [k for k, d in defs.items() if k.startswith(f"{name}_") and d == rewritten[name]]
            if same:
                renames[name] = same[0]
                continue
            number = 2
            while f"{name}_{number}" in taken:
                number += 1
            renames[name] = f"{name}_{number}"
            taken.add(renames[name])
    defs.update(rewritten)
    renamed: dict[str, Any] = _renamed(body, renames)
    return renamed


def _renamed(node: Any, renames: dict[str, str]) -> Any:
    """`node` with each `$ref` to a renamed definition pointing at its new name."""
    if not renames:
        return node
    if isinstance(node, list):
        return [_renamed(n, renames) for n in node]
    if not isinstance(node, dict):
        return node
    result = {k: _renamed(v, renames) for k, v in node.items()}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        name, _, rest = ref[len(_DEFS) :].partition("/")
        if name in renames:
            result["$ref"] = _DEFS + renames[name] + (f"/{rest}" if rest else "")
    return result
