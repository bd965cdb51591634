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
`fake_llm_script.Script`). A request with `"stream": true` gets the reply as Server-Sent Events
in that endpoint's streaming format, text and arguments split over several chunks (see
`fake_llm_stream.stream_frames`).

This module is the HTTP server; beside it: the script (`fake_llm_script`), whole bodies
(`fake_llm_wire`), streams (`fake_llm_stream`), the context window (`fake_llm_window`), what a
request carries (`fake_llm_content`) and structured outputs (`fake_llm_output`). Tests import
the script's helpers from here.
"""

from __future__ import annotations

import dataclasses
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .fake_llm_content import BadRequest, PromptCache, Tokens, attachments, prompt_tokens
from .fake_llm_output import check_output_format
from .fake_llm_script import HOLD_SECONDS, Reply, Request, Script, error, text, tool_calls
from .fake_llm_stream import ARGUMENTS_PIECE, stream_frames
from .fake_llm_window import count, too_long, trim
from .fake_llm_wire import RENDERERS, USAGE, error_body

__all__ = [
    "ARGUMENTS_PIECE",
    "FakeLLMServer",
    "Reply",
    "Request",
    "error",
    "stream_frames",
    "text",
    "tool_calls",
]


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
        self.script = Script()
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
                    reply = server.script.take(request)
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
                        usage = server.cache.usage(self.path, body, USAGE[1])
                        reply = dataclasses.replace(reply, tokens=usage)
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
                    self._send(reply.status, error_body(self.path, reply), reply.headers)
                elif body.get("stream") is True:
                    frames = stream_frames(self.path, reply, body.get("model", "fake"), body)
                    self._stream(frames, reply, request)
                else:
                    self._send(200, render(reply, body.get("model", "fake")), reply.headers)

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
                    return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
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
            self.script.add(*replies)

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
