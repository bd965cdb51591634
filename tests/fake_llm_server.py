"""A local HTTP server that speaks the OpenAI (Chat Completions, Responses) and Anthropic
(Messages) wire formats, so tests use the real SDK clients over real HTTP.

    with FakeLLMServer() as server:
        server.reply(text("hello"), tool_calls(("c1", "add", '{"a": 1}')), error(429, ...))
        server.reply(text("thought long", delay=6))  # answers after 6 s
        server.reply(Reply(text="slow", chunk_delay=0.5), Reply(text="cut off", cut_after=3))
        client = openai.AsyncOpenAI(base_url=server.openai_url, api_key="test", max_retries=0)

Each request takes the next scripted reply and renders it in the format of the endpoint hit;
every request body is recorded in `server.requests`. A retry of a request (the same path and
body) gets the reply its earlier attempt got, unless that one failed or its client left (see
`FakeLLMServer.scripted`). A request with `"stream": true` gets the
reply as Server-Sent Events in that endpoint's streaming format, text and arguments split over
several chunks (see `stream_frames`).
"""

from __future__ import annotations

import dataclasses
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .fake_llm_content import BadRequest, PromptCache, Seen, Tokens, attachments, prompt_tokens
from .fake_llm_output import check_output_format
from .fake_llm_window import count, trim


@dataclass
class Reply:
    text: str | None = None
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    status: int = 200
    error_message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds the server thinks before it answers: a slow model call."""
    chunk_delay: float = 0.0
    """Streaming only: seconds between chunks, a slow streaming model."""
    cut_after: int | None = None
    """Streaming only: the connection drops after this many chunks, mid-body."""
    fail_after: int | None = None
    """Streaming only: after this many chunks the server reports an error the way the endpoint
    does mid-stream (with `error_message`) and ends the stream: a model overloaded mid-reply."""
    cut_cleanly: bool = False
    """With `cut_after`: the HTTP body ends properly instead, but the event stream still lacks
    its end (a proxy that gave up on the model)."""
    hold: threading.Event | None = None
    """Streaming only: after `hold_after` chunks the stream waits until the test sets this (for
    at most `HOLD_SECONDS`), so a test sees the reply part-way however slow the machine is."""
    hold_after: int = 0
    tokens: Tokens | None = None
    """Set by a server with a prompt cache: the usage it reports for this request."""
    error_code: str | None = None
    """OpenAI's `code` and `param` in an error body (`context_length_exceeded`, `messages`)."""
    error_param: str | None = None


HOLD_SECONDS = 120.0
"""The longest a held stream waits for its test: a test that failed first does not leave the
server's thread waiting for ever."""


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
    disconnected: threading.Event = field(default_factory=threading.Event)
    """Set when the client closed a streamed reply before its last chunk."""
    attachments: list[Seen] = field(default_factory=list)
    """The images and files the request carried, read as its API defines them."""

    @property
    def key(self) -> str:
        """What a retry of this request has in common with it: its path and body."""
        return self.path + json.dumps(self.body, sort_keys=True)


def _whole(reply: Reply) -> bool:
    """A reply that answers its request in full: a retry of the request deserves it again."""
    return reply.status == 200 and reply.cut_after is None and reply.fail_after is None


USAGE = (11, 7)


def _tokens(reply: Reply) -> Tokens:
    return reply.tokens or Tokens(*USAGE)


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
            "prompt_tokens": _tokens(reply).input,
            "completion_tokens": _tokens(reply).output,
            "total_tokens": _tokens(reply).input + _tokens(reply).output,
            "prompt_tokens_details": {"cached_tokens": _tokens(reply).cached},
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
            "input_tokens": _tokens(reply).input,
            "output_tokens": _tokens(reply).output,
            "total_tokens": _tokens(reply).input + _tokens(reply).output,
            "input_tokens_details": {"cached_tokens": _tokens(reply).cached},
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
        "usage": _anthropic_usage(reply, _tokens(reply).output),
    }


def _anthropic_usage(reply: Reply, output: int) -> dict[str, int]:
    """Anthropic counts input after the last cache mark apart from what it read and wrote."""
    t = _tokens(reply)
    return {
        "input_tokens": t.input - t.cached - t.written,
        "output_tokens": output,
        "cache_read_input_tokens": t.cached,
        "cache_creation_input_tokens": t.written,
    }


RENDERERS = {"/v1/chat/completions": _chat, "/v1/responses": _responses, "/v1/messages": _messages}

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
        usage = _chat(reply, model)["usage"]
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
    final = _responses(reply, model)
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
    final = _messages(reply, model)
    start = final | {
        "content": [],
        "stop_reason": None,
        "usage": _anthropic_usage(reply, 1),
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
            "usage": {"output_tokens": _tokens(reply).output},
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


def too_long(
    path: str, tokens: int, max_tokens: int, window: int, streamed: bool = False
) -> Reply | None:
    """Each API's own refusal of a prompt over the model's context window (None: it fits). A
    streamed Responses call is refused inside its stream: an `error` event after the first two."""
    if path == "/v1/messages":
        if tokens > window:
            return Reply(
                status=400, error_message=f"prompt is too long: {tokens} tokens > {window} maximum"
            )
        if tokens + max_tokens > window:
            message = (
                f"input length and `max_tokens` exceed context limit: {tokens} + {max_tokens} > "
                f"{window}, decrease input length or `max_tokens` and try again"
            )
            return Reply(status=400, error_message=message)
        return None
    if path == "/v1/responses":
        if tokens + max_tokens <= window:
            return None
        message = (
            "Your input exceeds the context window of this model. Please adjust your input "
            "and try again."
        )
        if streamed:
            return Reply(fail_after=2, error_message=message, error_code="context_length_exceeded")
        return Reply(
            status=400,
            error_message=message,
            error_code="context_length_exceeded",
            error_param="input",
        )
    if tokens + max_tokens <= window:
        return None
    message = (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{tokens + max_tokens} tokens ({tokens} in the messages, {max_tokens} in the "
        "completion). Please reduce the length of the messages or completion."
    )
    return Reply(
        status=400,
        error_message=message,
        error_code="context_length_exceeded",
        error_param="messages",
    )


class FakeLLMServer:
    def __init__(
        self,
        prompt_cache: bool = False,
        context_window: int | None = None,
        token_scale: float = 1.0,
    ) -> None:
        """`prompt_cache`: usage counts the prompt's tokens and reports cache hits as each
        provider does (`fake_llm_content.PromptCache`); otherwise every call uses `USAGE`.
        `context_window`: a prompt (with its `max_tokens`) over this many tokens is refused
        with the API's own 400, and usage counts the prompt's tokens; a prompt the request asks
        the provider to trim is trimmed first (`fake_llm_window.trim`). `token_scale`: this
        server's tokens per four characters (a tokenizer denser or sparser than the estimate).
        The token-counting endpoints answer with the same count (`fake_llm_window.count`)."""
        self.cache = PromptCache() if prompt_cache else None
        self.context_window = context_window
        self.token_scale = token_scale
        self.counts: list[tuple[str, int]] = []
        """Each token-counting request's path and the count it was given."""
        self.counts_fail = False
        """The counting endpoints answer 500 (an outage of the endpoint alone)."""
        self.trimmed = 0
        """Requests the server trimmed as their provider would (`fake_llm_window.trim`)."""
        self.prompt_tokens: list[int] = []
        """With `context_window`: each request's prompt tokens, refused ones included."""
        self.refused = 0
        self.responder: Callable[[Request], Reply] | None = None
        """Answers a request when no reply is scripted: a model that follows the conversation."""
        self.replies: deque[Reply] = deque()
        self._given: dict[str, tuple[Reply, Request]] = {}
        """The scripted reply each request key got, with the request that took it."""
        self.requests: list[Request] = []
        self.connections = 0
        """TCP connections accepted so far: a client that reuses its connection opens one."""
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the real APIs: a client may send its next request on the same
            # connection (every response has a length or is chunked).
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                with server._lock:
                    server.connections += 1
                super().setup()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                counted = count(self.path, body, server.tokens)
                if counted is not None:
                    with server._lock:
                        server.counts.append((self.path, counted["input_tokens"]))
                    if server.counts_fail:
                        self._send(500, {"error": {"message": "counting is down"}}, {})
                    else:
                        self._send(200, counted, {})
                    return
                request = Request(self.path, body, dict(self.headers.items()))
                try:
                    request.attachments = attachments(self.path, body)
                    check_output_format(self.path, body)
                except BadRequest as exc:
                    problem: str | None = str(exc)
                else:
                    problem = None
                with server._lock:
                    server.requests.append(request)
                    reply = server.scripted(request)
                    if reply is None and server.responder is not None:
                        reply = server.responder(request)
                    if server.context_window is not None and reply is not None:
                        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 0
                        limit = limit or body.get("max_output_tokens") or 0
                        streamed = body.get("stream") is True
                        window = server.context_window
                        try:
                            heard = dict(self.headers.items())
                            trimmed = trim(self.path, body, heard, window, limit, server.tokens)
                        except BadRequest as exc:
                            problem, trimmed = str(exc), None
                        server.trimmed += trimmed is not None
                        tokens = server.tokens(self.path, trimmed or body)
                        server.prompt_tokens.append(tokens)
                        refusal = too_long(self.path, tokens, limit, window, streamed)
                        server.refused += refusal is not None
                        if refusal is None and server.cache is None:
                            reply = dataclasses.replace(reply, tokens=Tokens(tokens, USAGE[1]))
                        reply = refusal or reply
                    if reply is not None and problem is not None:
                        reply = Reply(status=400, error_message=problem)
                    if reply is not None and server.cache is not None and reply.status == 200:
                        tokens = server.cache.usage(self.path, body, USAGE[1])
                        reply = dataclasses.replace(reply, tokens=tokens)
                if reply is not None and reply.delay and self._left_during(reply.delay):
                    request.disconnected.set()  # a retry takes the next reply
                    self.close_connection = True
                    return
                render = RENDERERS.get(self.path)
                if render is None:
                    self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                elif reply is None:
                    self._send(500, {"error": {"message": "fake server: no reply scripted"}}, {})
                elif reply.status != 200:
                    self._send(reply.status, self._error_body(reply), reply.headers)
                elif body.get("stream") is True:
                    frames = stream_frames(self.path, reply, body.get("model", "fake"), body)
                    self._stream(frames, reply, request)
                else:
                    self._send(200, render(reply, body.get("model", "fake")), reply.headers)

            def _error_body(self, reply: Reply) -> dict[str, Any]:
                if self.path == "/v1/messages":
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

            def _stream(self, frames: list[bytes], reply: Reply, request: Request) -> None:
                """Chunked HTTP/1.1, as the real APIs send it, so a connection dropped mid-body
                is an incomplete read for the client, not a short but finished reply."""
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                try:
                    self.end_headers()
                    for n, frame in enumerate(frames):
                        if n == reply.cut_after:
                            if reply.cut_cleanly:
                                self.wfile.write(b"0\r\n\r\n")
                            self.close_connection = True
                            return
                        if reply.hold is not None and n == reply.hold_after:
                            reply.hold.wait(HOLD_SECONDS)
                        if n and reply.chunk_delay and self._client_gone(reply.chunk_delay):
                            request.disconnected.set()
                            self.close_connection = True
                            return
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    request.disconnected.set()
                    self.close_connection = True

            def _client_gone(self, seconds: float) -> bool:
                """Waits `seconds` between chunks, watching the socket: a client that closed
                it makes it readable at end of file."""
                readable, _, _ = select.select([self.connection], [], [], seconds)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except ConnectionResetError:
                    return True

            def _left_during(self, seconds: float) -> bool:
                """Thinks for `seconds` (a thread of its own per request), watching the socket:
                whether the client closed it meanwhile (its worker killed mid-call)."""
                deadline = time.monotonic() + seconds
                if self._client_gone(seconds):
                    return True
                time.sleep(max(0.0, deadline - time.monotonic()))  # woken by bytes, not a close
                return False

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def tokens(self, path: str, body: dict[str, Any]) -> int:
        """The prompt's tokens as this server counts them."""
        return int(prompt_tokens(path, body) * self.token_scale)

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

    def scripted(self, request: Request) -> Reply | None:
        """The scripted reply for `request` (with the lock held). A retry of a request gets the
        reply its earlier attempt got while that one was whole and its client stayed: under
        load Temporal tries a model call again after its reply was sent (the activity timed
        out), and taking the next reply then shifted every later one. After an error, a cut
        stream or a client that left (a worker killed mid-call), a retry takes the next reply,
        as scripts of failures expect."""
        earlier = self._given.get(request.key)
        if earlier is not None and not earlier[1].disconnected.is_set():
            return earlier[0]
        reply = self.replies.popleft() if self.replies else None
        if reply is not None and _whole(reply):
            self._given[request.key] = (reply, request)
        return reply

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
