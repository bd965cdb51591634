"""What the fake LLM server checks of a request for a typed answer: the schema is where each
API reads it and has the shape it accepts (a 400, as the API answers, otherwise)."""

from __future__ import annotations

import re
from typing import Any

from .fake_llm_content import BadRequest

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_output_format(path: str, body: dict[str, Any]) -> None:
    if path == "/v1/chat/completions" and "response_format" in body:
        fmt = body["response_format"]
        _expect(fmt.get("type") == "json_schema", "response_format.type must be json_schema")
        spec = fmt.get("json_schema") or {}
        _named_schema(spec.get("name"), spec.get("schema"), spec.get("strict"), "json_schema")
    elif path == "/v1/responses" and "text" in body:
        fmt = (body["text"] or {}).get("format") or {}
        _expect(fmt.get("type") == "json_schema", "text.format.type must be json_schema")
        _named_schema(fmt.get("name"), fmt.get("schema"), fmt.get("strict"), "text.format")
    elif path == "/v1/messages":
        fmt = (body.get("output_config") or {}).get("format")
        if fmt is not None:
            _expect(fmt.get("type") == "json_schema", "output_config.format.type: json_schema")
            _object(fmt.get("schema"), "output_config.format.schema")
        names = [t.get("name") for t in body.get("tools", [])]
        for tool in body.get("tools", []):
            _object(tool.get("input_schema"), f"tools.{tool.get('name')}.input_schema")
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool":
            _expect(choice.get("name") in names, "tool_choice names a tool not in tools")


def output_schema(path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The schema a request asks the answer to follow, wherever its API carries it."""
    if path == "/v1/chat/completions":
        return (body.get("response_format") or {}).get("json_schema", {}).get("schema")
    if path == "/v1/responses":
        return ((body.get("text") or {}).get("format") or {}).get("schema")
    fmt = (body.get("output_config") or {}).get("format")
    if fmt is not None:
        return fmt.get("schema")
    forced = (body.get("tool_choice") or {}).get("name")
    tools = {t.get("name"): t for t in body.get("tools", [])}
    if forced in tools:
        return tools[forced].get("input_schema")
    return None


def _named_schema(name: Any, schema: Any, strict: Any, where: str) -> None:
    _expect(isinstance(name, str) and bool(_NAME.match(name)), f"{where}.name is invalid")
    _object(schema, f"{where}.schema")
    if strict:
        _strict(schema, f"{where}.schema")


def _object(schema: Any, where: str) -> None:
    _expect(isinstance(schema, dict), f"{where} must be an object")
    _expect(schema.get("type") == "object", f"{where} must have type 'object' at its root")


def _strict(node: Any, where: str) -> None:
    """OpenAI's strict mode: every object closed and every property required."""
    if isinstance(node, list):
        for item in node:
            _strict(item, where)
    elif isinstance(node, dict):
        if node.get("type") == "object":
            _expect(node.get("additionalProperties") is False, f"{where}: additionalProperties")
            props = set(node.get("properties", {}))
            _expect(set(node.get("required", [])) == props, f"{where}: all fields required")
        for value in node.values():
            _strict(value, where)


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise BadRequest(f"Invalid schema for response_format: {message}")
