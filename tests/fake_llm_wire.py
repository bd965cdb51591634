"""The fake LLM server's whole (unstreamed) bodies in each API's wire format: Chat
Completions, Responses and Anthropic Messages, a reply and an error."""

from __future__ import annotations

import json
from typing import Any

from .fake_llm_content import Tokens
from .fake_llm_script import Reply

USAGE = (11, 7)


def tokens_of(reply: Reply) -> Tokens:
    return reply.tokens or Tokens(*USAGE)


def chat_body(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in reply.calls
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": tokens_of(reply).input,
            "completion_tokens": tokens_of(reply).output,
            "total_tokens": tokens_of(reply).input + tokens_of(reply).output,
            "prompt_tokens_details": {"cached_tokens": tokens_of(reply).cached},
        },
    }


def responses_body(reply: Reply, model: str) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if reply.text is not None:
        output.append(
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    output += [
        {
            "type": "function_call",
            "id": f"fc_{i}",
            "call_id": i,
            "name": n,
            "arguments": a,
            "status": "completed",
        }
        for i, n, a in reply.calls
    ]
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "model": model,
        "status": "completed",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": tokens_of(reply).input,
            "output_tokens": tokens_of(reply).output,
            "total_tokens": tokens_of(reply).input + tokens_of(reply).output,
            "input_tokens_details": {"cached_tokens": tokens_of(reply).cached},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def messages_body(reply: Reply, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text is not None:
        content.append({"type": "text", "text": reply.text})
    content += [
        {"type": "tool_use", "id": i, "name": n, "input": json.loads(a)} for i, n, a in reply.calls
    ]
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if reply.calls else "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(reply, tokens_of(reply).output),
    }


def anthropic_usage(reply: Reply, output: int) -> dict[str, int]:
    """Anthropic counts input after the last cache mark apart from what it read and wrote."""
    t = tokens_of(reply)
    return {
        "input_tokens": t.input - t.cached - t.written,
        "output_tokens": output,
        "cache_read_input_tokens": t.cached,
        "cache_creation_input_tokens": t.written,
    }


RENDERERS = {
    "/v1/chat/completions": chat_body,
    "/v1/responses": responses_body,
    "/v1/messages": messages_body,
}


def error_body(path: str, reply: Reply) -> dict[str, Any]:
    """An error reply's body as the API at `path` writes it."""
    if path == "/v1/messages":
        return {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": reply.error_message},
        }
    return {
        "error": {
            "message": reply.error_message,
            "type": "invalid_request_error" if reply.error_code else "error",
            "param": reply.error_param,
            "code": reply.error_code,
        }
    }
