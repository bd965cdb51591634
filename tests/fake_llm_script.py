"""What the fake LLM server answers: the replies a test scripts, and which one each request
gets.

A test scripts replies in order (`FakeLLMServer.reply(text("hi"), tool_calls(...), error(429))`)
and each request takes the next. A retry of a request (the same path and body) gets the reply
its earlier attempt got, unless that one failed or its client left (`Script.take`).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .fake_llm_content import Seen, Tokens


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


class Script:
    """The replies a test scripted, in order, and the one each request key took (the server
    calls it with its lock held)."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self._given: dict[str, tuple[Reply, Request]] = {}
        """The scripted reply each request key got, with the request that took it."""

    def add(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def take(self, request: Request) -> Reply | None:
        """The scripted reply for `request`. A retry of a request gets the reply its earlier
        attempt got while that one was whole and its client stayed: under load Temporal tries a
        model call again after its reply was sent (the activity timed out), and taking the next
        reply then shifted every later one. After an error, a cut stream or a client that left
        (a worker killed mid-call), a retry takes the next reply, as scripts of failures
        expect."""
        earlier = self._given.get(request.key)
        if earlier is not None and not earlier[1].disconnected.is_set():
            return earlier[0]
        reply = self.replies.popleft() if self.replies else None
        if reply is not None and _whole(reply):
            self._given[request.key] = (reply, request)
        return reply
