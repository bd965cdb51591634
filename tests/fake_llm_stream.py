"""The fake LLM server's streamed replies: each API's Server-Sent Events for a reply, text and
arguments split over several chunks, and each API's error once its stream has begun."""

from __future__ import annotations

import json
from typing import Any

from .fake_llm_script import Reply
from .fake_llm_wire import anthropic_usage, chat_body, messages_body, responses_body, tokens_of

TEXT_PIECE = 4
ARGUMENTS_PIECE = 5
"""Characters a text delta / an arguments delta carries: several deltas for any real reply."""


def _pieces(value: str, size: int) -> list[str]:
    return [value[i : i + size] for i in range(0, len(value), size)]


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {payload}\n\n".encode()


def _chat_stream(reply: Reply, model: str, body: dict[str, Any]) -> list[bytes]:
    """Chunks as OpenAI sends them: the role first, content deltas, each tool call's id and name
    in its first fragment and its arguments over the next ones, the finish reason, the usage
    when asked for, then `[DONE]`."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [choice],
                "usage": None,
            }
        )

    first_content = None if reply.text is None else ""
    frames = [chunk({"role": "assistant", "content": first_content, "refusal": None})]
    frames += [chunk({"content": piece}) for piece in _pieces(reply.text or "", TEXT_PIECE)]
    for index, (call_id, name, arguments) in enumerate(reply.calls):
        start = {"name": name, "arguments": ""}
        frames.append(
            chunk(
                {
                    "tool_calls": [
                        {"index": index, "id": call_id, "type": "function", "function": start}
                    ]
                }
            )
        )
        frames += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in _pieces(arguments, ARGUMENTS_PIECE)
        ]
    frames.append(chunk({}, "tool_calls" if reply.calls else "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = chat_body(reply, model)["usage"]
        frames.append(
            _sse(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        )
    return [*frames, _sse("[DONE]")]


def _responses_stream(reply: Reply, model: str, body: dict[str, Any]) -> list[bytes]:
    """Typed events as the Responses API sends them, each output item added, filled by deltas
    and done, ending with `response.completed` that carries the whole response."""
    final = responses_body(reply, model)
    events: list[dict[str, Any]] = [
        {
            "type": "response.created",
            "response": final | {"status": "in_progress", "output": [], "usage": None},
        },
        {
            "type": "response.in_progress",
            "response": final | {"status": "in_progress", "output": [], "usage": None},
        },
    ]
    for index, item in enumerate(final["output"]):
        at = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": item | {"status": "in_progress", "content": []},
                }
            )
            part = item["content"][0]
            events.append(
                {
                    "type": "response.content_part.added",
                    **at,
                    "content_index": 0,
                    "part": part | {"text": ""},
                }
            )
            events += [
                {
                    "type": "response.output_text.delta",
                    **at,
                    "content_index": 0,
                    "delta": piece,
                    "logprobs": [],
                }
                for piece in _pieces(part["text"], TEXT_PIECE)
            ]
            events.append(
                {
                    "type": "response.output_text.done",
                    **at,
                    "content_index": 0,
                    "text": part["text"],
                    "logprobs": [],
                }
            )
            events.append(
                {"type": "response.content_part.done", **at, "content_index": 0, "part": part}
            )
        else:
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": item | {"status": "in_progress", "arguments": ""},
                }
            )
            events += [
                {"type": "response.function_call_arguments.delta", **at, "delta": piece}
                for piece in _pieces(item["arguments"], ARGUMENTS_PIECE)
            ]
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    **at,
                    "arguments": item["arguments"],
                }
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": final})
    return [_sse(e | {"sequence_number": n}, e["type"]) for n, e in enumerate(events)]


def _messages_stream(reply: Reply, model: str, body: dict[str, Any]) -> list[bytes]:
    """Messages API events: `message_start` with the input usage, a start, deltas and a stop per
    content block (tool input as pieces of JSON), `message_delta` with the stop reason and the
    output usage, then `message_stop`."""
    final = messages_body(reply, model)
    start = final | {
        "content": [],
        "stop_reason": None,
        "usage": anthropic_usage(reply, 1),
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(final["content"]):
        if block["type"] == "text":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": block | {"text": ""},
                }
            )
            events += [
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
                for piece in _pieces(block["text"], TEXT_PIECE)
            ]
        else:
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": block | {"input": {}},
                }
            )
            events += [
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
                for piece in ["", *_pieces(json.dumps(block["input"]), ARGUMENTS_PIECE)]
            ]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": final["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": tokens_of(reply).output},
        }
    )
    events.append({"type": "message_stop"})
    return [_sse(e, e["type"]) for e in events]


STREAMERS = {
    "/v1/chat/completions": _chat_stream,
    "/v1/responses": _responses_stream,
    "/v1/messages": _messages_stream,
}


def stream_frames(path: str, reply: Reply, model: str, body: dict[str, Any]) -> list[bytes]:
    """The Server-Sent Events a streaming request to `path` gets for `reply`, one per chunk."""
    frames = STREAMERS[path](reply, model, body)
    if reply.fail_after is None:
        return frames
    message = reply.error_message or "overloaded"
    error = _stream_error(path, message, reply.fail_after, reply.error_code)
    return [*frames[: reply.fail_after], error]


def _stream_error(path: str, message: str, sequence_number: int, code: str | None = None) -> bytes:
    """How each API reports a failure once its stream has begun."""
    if path == "/v1/chat/completions":
        return _sse({"error": {"message": message, "type": "server_error", "code": None}})
    if path == "/v1/responses":
        error = {"type": "error", "code": code or "server_error", "message": message, "param": None}
        return _sse(error | {"sequence_number": sequence_number}, "error")
    return _sse(
        {"type": "error", "error": {"type": "overloaded_error", "message": message}}, "error"
    )
