"""Typed outputs: an agent's `output_type` as a schema for the provider and a validator for
the workflow.

Validation is plain, deterministic Python (pydantic's `TypeAdapter` over the answer's JSON
text), so the workflow runs it itself: no activity, nothing recorded beyond the answer, and a
replay validates the same text the same way.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .wire import OutputFormat


@dataclass(frozen=True)
class Valid:
    value: Any
    """The typed value as JSON data (`TypeAdapter.dump_python(mode="json")`)."""


@dataclass(frozen=True)
class Invalid:
    error: str
    """What is wrong, as the model is told it."""


class OutputSpec:
    """`output_type` made usable: its provider format (computed once) and its validator."""

    def __init__(self, output_type: Any) -> None:
        self.output_type = output_type
        self.adapter: TypeAdapter[Any] = TypeAdapter(output_type)
        schema = self.adapter.json_schema()
        wrapped = schema.get("type") != "object"
        if wrapped:
            defs = schema.pop("$defs", None)
            schema = {"type": "object", "properties": {"output": schema}, "required": ["output"]}
            if defs:
                schema["$defs"] = defs
        strict = strict_schema(schema)
        self.format = OutputFormat(
            name=_name(output_type),
            json_schema=strict if strict is not None else schema,
            wrapped=wrapped,
            strict=strict is not None,
        )

    def validate(self, text: str | None) -> Valid | Invalid:
        """The answer as the typed value, or why it is not one. Never raises."""
        try:
            data = json.loads(_unfenced(text or ""))
        except json.JSONDecodeError as exc:
            return Invalid(f"the answer is not JSON ({exc}); answer with JSON only")
        if self.format.wrapped:
            if not isinstance(data, dict) or "output" not in data:
                return Invalid('the answer must be a JSON object {"output": ...}')
            data = data["output"]
        try:
            value = self.adapter.validate_python(data)
        except ValidationError as exc:
            return Invalid(str(exc))
        return Valid(self.adapter.dump_python(value, mode="json"))


def strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """`schema` in OpenAI's strict mode (`additionalProperties: false` on every object), or
    None when it cannot be: an object with an optional property (strict mode wants every
    property required) or one that allows extra properties."""
    result = copy.deepcopy(schema)

    def visit(node: Any) -> bool:
        if isinstance(node, list):
            return all(visit(n) for n in node)
        if not isinstance(node, dict):
            return True
        if node.get("type") == "object":
            properties = node.get("properties", {})
            if node.get("additionalProperties") not in (None, False):
                return False
            if set(node.get("required", [])) != set(properties):
                return False
            node["additionalProperties"] = False
        return all(visit(v) for v in node.values())

    return result if visit(result) else None


def _name(output_type: Any) -> str:
    """A name providers accept (`^[a-zA-Z0-9_-]{1,64}$`)."""
    raw = getattr(output_type, "__name__", None) or "output"
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw)[:64] or "output"


def _unfenced(text: str) -> str:
    """A model without native structured outputs may wrap its JSON in a Markdown fence."""
    stripped = text.strip()
    match = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", stripped, re.DOTALL)
    return match.group(1) if match else stripped


__all__ = ["Invalid", "OutputSpec", "Valid", "strict_schema"]
