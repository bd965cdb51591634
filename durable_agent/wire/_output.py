"""The shape a typed final answer must take, as the model activity sends it to a provider."""

from __future__ import annotations

from typing import Any

from ._conversation import Data

OUTPUT_TOOL = "final_output"
"""The forced tool's name, for a model without native structured outputs (Anthropic)."""


class OutputFormat(Data):
    """An agent's `output_type` as JSON Schema, for the provider's structured outputs.

    `json_schema` is always an object (every provider wants one at the root): a type whose
    schema is not an object (a list, a union, a scalar) is `wrapped` as `{"output": <schema>}`,
    and the answer's `output` field is the value. `strict`: the schema meets OpenAI's strict
    mode (every property required, no additional ones), so the provider enforces it; otherwise
    it is a hint and the workflow's validation is what holds."""

    name: str
    json_schema: dict[str, Any]
    wrapped: bool = False
    strict: bool = False
