"""A misbehaving OpenAI-compatible server (Chat Completions), loopback only, for the real
`openai` SDK: the first attempt of each model call gets a fault, round-robin over `FAULTS`;
a retry gets a good answer. Streaming requests (the default) are answered as a stream of
chunks, and its faults break the stream (cut mid-way, a malformed chunk, chunks of the wrong
shape). Stateless about runs: each answer follows from the request (the
run's token in its first user message, how many tool results it holds), so retries and
replays get the same answer.

A run asks for `keyed_work` twice (calls `look-0`, `look-1`), then answers.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = (
    "429 with Retry-After: 2",
    "HTTP 500",
    "HTTP 503",
    "connection reset",
    "hang past the model timeout",
    "truncated body",
    "malformed JSON body",
    "200 with a body of the wrong shape",
)
TOOL_TURNS = 2


@dataclass
class Call:
    """One model call of one run, across its attempts."""

    fault: str | None
    first: float
    attempts: int = 0
    answered: float | None = None


@dataclass
class Ledger:
    calls: dict[tuple[str, int], Call] = field(default_factory=dict)
    assigned: int = 0


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages", [])
    turn = sum(1 for m in messages if m.get("role") == "tool")
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if turn < TOOL_TURNS:
        message["tool_calls"] = [
            {
                "id": f"look-{turn}",
                "type": "function",
                "function": {"name": "keyed_work", "arguments": json.dumps({"seconds": 0.2})},
            }
        ]
    else:
        message["content"] = "the oracle has spoken"
    return {
        "id": "chatcmpl-storm",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "storm-model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if turn < TOOL_TURNS else "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def _stream(answer: dict[str, Any]) -> bytes:
    """The answer as Chat Completions chunks (server-sent events): the text in pieces, each tool
    call's arguments in pieces, the finish reason, the usage, `[DONE]`."""
    message, base = answer["choices"][0]["message"], {k: answer[k] for k in ("id", "model")}
    deltas: list[dict[str, Any]] = [{"role": "assistant"}]
    text = message.get("content") or ""
    deltas += [{"content": text[i : i + 6]} for i in range(0, len(text), 6)]
    for index, call in enumerate(message.get("tool_calls", [])):
        function = call["function"]
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": function["name"], "arguments": ""},
                    }
                ]
            }
        )
        arguments = function["arguments"]
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + 5]}}]}
            for i in range(0, len(arguments), 5)
        ]
    chunks = [
        {**base, "object": "chat.completion.chunk", "created": 0, "choices": [choice]}
        for choice in [{"index": 0, "delta": d, "finish_reason": None} for d in deltas]
        + [{"index": 0, "delta": {}, "finish_reason": answer["choices"][0]["finish_reason"]}]
    ]
    chunks.append(
        {
            **base,
            "object": "chat.completion.chunk",
            "created": 0,
            "choices": [],
            "usage": answer["usage"],
        }
    )
    frames = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
    return "".join(frames).encode()


def _key(body: dict[str, Any]) -> tuple[str, int]:
    first: dict[str, Any] = next(
        (m for m in body.get("messages", []) if m.get("role") == "user"), {}
    )
    found = re.search(r"case (\S+)", str(first.get("content", "")))
    turn = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
    return (found.group(1) if found else "?"), turn


class FaultyProvider:
    def __init__(self, hang_seconds: float, faulty: bool = True) -> None:
        self.ledger = Ledger()
        self.faulty = faulty
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                key = _key(body)
                with provider._lock:
                    call = provider.ledger.calls.get(key)
                    if call is None:
                        fault = None
                        if provider.faulty:
                            fault = FAULTS[provider.ledger.assigned % len(FAULTS)]
                            provider.ledger.assigned += 1
                        call = provider.ledger.calls[key] = Call(fault, time.monotonic())
                    call.attempts += 1
                    fault = call.fault if call.attempts == 1 else None
                streams = bool(body.get("stream"))
                good = _stream(_answer(body)) if streams else json.dumps(_answer(body)).encode()
                self.streams = streams
                if fault is None:
                    self._send(200, good)
                    with provider._lock:
                        if call.answered is None:
                            call.answered = time.monotonic()
                elif fault.startswith("429"):
                    self._send(429, _error("slow down"), {"retry-after": "2"})
                elif fault.startswith("HTTP"):
                    self._send(int(fault.split()[1]), _error("the model is unwell"))
                elif fault == "connection reset":
                    self._reset()
                elif fault.startswith("hang"):
                    time.sleep(hang_seconds)
                    self._reset()
                elif fault == "truncated body":
                    self._send(200, good, cut=len(good) // 2)
                elif fault == "malformed JSON body":
                    broken = b'{"id": "chatcmpl-storm", "choices": [{"index": 0, "mess'
                    self._send(200, b"data: " + broken + b"\n\n" if streams else broken)
                else:
                    wrong = json.dumps({"status": "ok", "data": []}).encode()
                    self._send(
                        200, b"data: " + wrong + b"\n\ndata: [DONE]\n\n" if streams else wrong
                    )

            def _send(
                self,
                status: int,
                data: bytes,
                headers: dict[str, str] | None = None,
                cut: int | None = None,
            ) -> None:
                try:
                    self.send_response(status)
                    streamed = status == 200 and getattr(self, "streams", False)
                    kind = "text/event-stream" if streamed else "application/json"
                    self.send_header("content-type", kind)
                    self.send_header("content-length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data if cut is None else data[:cut])
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller gave up (a model timeout)
                if cut is not None:
                    self._reset()

            def _reset(self) -> None:
                """Close with RST instead of FIN: the client sees a connection reset."""
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> FaultyProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "error", "code": None}}).encode()
