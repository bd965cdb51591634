"""A local HTTP server that speaks the OpenAI (Chat Completions, Responses) and Anthropic
(Messages) wire formats, so tests use the real SDK clients over real HTTP.

    with FakeLLMServer() as server:
        server.reply(text("hello"), tool_calls(("c1", "add", '{"a": 1}')), error(429, ...))
        server.reply(text("thought long", delay=6))  # answers after 6 s
        client = openai.AsyncOpenAI(base_url=server.openai_url, api_key="test", max_retries=0)

Each request takes the next scripted reply and renders it in the format of the endpoint hit;
every request body is recorded in `server.requests`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str | None = None
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    status: int = 200
    error_message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds the server thinks before it answers: a slow model call."""


def text(content: str, delay: float = 0.0) -> Reply:
    return Reply(text=content, delay=delay)


def tool_calls(*calls: tuple[str, str, str], content: str | None = None) -> Reply:
    """Each call is (id, name, arguments as sent by the model, possibly broken JSON)."""
    return Reply(text=content, calls=list(calls))


def error(status: int, message: str = "error", headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, error_message=message, headers=headers or {})


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


USAGE = (11, 7)


def _chat(reply: Reply, model: str) -> dict[str, Any]:
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
            "prompt_tokens": USAGE[0],
            "completion_tokens": USAGE[1],
            "total_tokens": sum(USAGE),
        },
    }


def _responses(reply: Reply, model: str) -> dict[str, Any]:
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
            "input_tokens": USAGE[0],
            "output_tokens": USAGE[1],
            "total_tokens": sum(USAGE),
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _messages(reply: Reply, model: str) -> dict[str, Any]:
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
        "usage": {"input_tokens": USAGE[0], "output_tokens": USAGE[1]},
    }


RENDERERS = {"/v1/chat/completions": _chat, "/v1/responses": _responses, "/v1/messages": _messages}


class FakeLLMServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(Request(self.path, body, dict(self.headers.items())))
                    reply = server.replies.popleft() if server.replies else None
                if reply is not None and reply.delay:
                    time.sleep(reply.delay)  # a thread of its own per request
                render = RENDERERS.get(self.path)
                if render is None:
                    self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                elif reply is None:
                    self._send(500, {"error": {"message": "fake server: no reply scripted"}}, {})
                elif reply.status != 200:
                    self._send(reply.status, self._error_body(reply), reply.headers)
                else:
                    self._send(200, render(reply, body.get("model", "fake")), reply.headers)

            def _error_body(self, reply: Reply) -> dict[str, Any]:
                if self.path == "/v1/messages":
                    return {
                        "type": "error",
                        "error": {"type": "invalid_request_error", "message": reply.error_message},
                    }
                return {"error": {"message": reply.error_message, "type": "error", "code": None}}

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller is gone (a worker killed mid-call)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        return self.url

    def reply(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
