"""What the fake LLM server checks in a request's content, and its prompt cache.

`attachments(path, body)` reads every image and file of a request the way its API defines them
and refuses (`BadRequest`, a 400 from the server) what that API would refuse: an unknown part,
bytes that are not base64, a Chat Completions tool message with anything but text, more than
four Anthropic cache marks. `PromptCache` reports cached input tokens as each provider does:
OpenAI caches any prompt prefix of 1,024 tokens or more (in steps of 128) it saw before under the
same `prompt_cache_key`; Anthropic reads back a prefix only up to a `cache_control` mark that an
earlier request wrote, looking up to 20 blocks back from each mark, and reports what it wrote.
A token here is four characters of the part's JSON.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple


class BadRequest(ValueError):
    """What the real API answers with a 400 `invalid_request_error`."""


class Seen(NamedTuple):
    """One attachment as the request carried it."""

    where: str  # "user" or "tool"
    kind: str  # "image" or "file"
    source: str  # "url", "bytes" or "file_id"
    value: str  # the URL, the bytes' base64, or the file id
    media_type: str | None = None


def attachments(path: str, body: dict[str, Any]) -> list[Seen]:
    if path == "/v1/chat/completions":
        return list(_chat(body.get("messages") or []))
    if path == "/v1/responses":
        return list(_responses(body.get("input") or []))
    if path == "/v1/messages":
        _count_cache_marks(body)
        return list(_anthropic(body.get("messages") or []))
    return []


def _data_url(url: str) -> tuple[str, str]:
    head, _, data = url.removeprefix("data:").partition(",")
    media_type, _, encoding = head.partition(";")
    if encoding != "base64":
        raise BadRequest("data URLs must be base64")
    return media_type, _b64(data)


def _b64(data: str) -> str:
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, TypeError):
        raise BadRequest("invalid base64 data") from None
    return data


def _url(where: str, kind: str, url: str) -> Seen:
    if url.startswith("data:"):
        media_type, data = _data_url(url)
        return Seen(where, kind, "bytes", data, media_type)
    if not url.startswith(("http://", "https://")):
        raise BadRequest(f"invalid url {url[:40]!r}")
    return Seen(where, kind, "url", url)


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return []
    if not isinstance(content, list):
        raise BadRequest("content must be a string or a list of parts")
    return content


def _chat(messages: list[dict[str, Any]]) -> Iterator[Seen]:
    for m in messages:
        for part in _parts(m.get("content")):
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            if m.get("role") != "user":
                raise BadRequest(f"{m.get('role')} messages take text parts only, not {kind!r}")
            if kind == "image_url":
                yield _url("user", "image", part["image_url"]["url"])
            elif kind == "file":
                f = part["file"]
                if f.get("file_id"):
                    yield Seen("user", "file", "file_id", f["file_id"])
                elif f.get("file_data") and f.get("filename"):
                    media_type, data = _data_url(f["file_data"])
                    yield Seen("user", "file", "bytes", data, media_type)
                else:
                    raise BadRequest("a file part needs file_id, or file_data and filename")
            else:
                raise BadRequest(f"invalid content part type {kind!r}")


def _responses_part(where: str, part: dict[str, Any]) -> Seen | None:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return None
    if kind == "input_image":
        if part.get("file_id"):
            return Seen(where, "image", "file_id", part["file_id"])
        return _url(where, "image", part["image_url"])
    if kind == "input_file":
        if part.get("file_id"):
            return Seen(where, "file", "file_id", part["file_id"])
        if part.get("file_url"):
            return _url(where, "file", part["file_url"])
        if part.get("file_data") and part.get("filename"):
            media_type, data = _data_url(part["file_data"])
            return Seen(where, "file", "bytes", data, media_type)
        raise BadRequest("input_file needs file_id, file_url, or file_data and filename")
    raise BadRequest(f"invalid input part type {kind!r}")


def _responses(items: list[dict[str, Any]]) -> Iterator[Seen]:
    for item in items:
        kind = item.get("type", "message")
        content = item.get("output") if kind == "function_call_output" else item.get("content")
        where = "tool" if kind == "function_call_output" else "user"
        if kind in ("function_call", "reasoning"):
            continue
        for part in _parts(content):
            seen = _responses_part(where, part)
            if seen is not None:
                if item.get("role") in ("system", "developer", "assistant"):
                    raise BadRequest(f"{item['role']} messages take no {seen.kind}s")
                yield seen


def _anthropic_block(where: str, block: dict[str, Any]) -> Seen | None:
    kind, source = block.get("type"), block.get("source") or {}
    if kind not in ("image", "document"):
        return None
    name = "image" if kind == "image" else "file"
    match source.get("type"):
        case "base64":
            media_type = source["media_type"]
            if kind == "document" and media_type != "application/pdf":
                raise BadRequest(f"document media_type must be application/pdf: {media_type}")
            return Seen(where, name, "bytes", _b64(source["data"]), media_type)
        case "text" if kind == "document":
            data = base64.b64encode(source["data"].encode()).decode()
            return Seen(where, name, "bytes", data, "text/plain")
        case "url":
            return _url(where, name, source["url"])
        case "file":
            return Seen(where, name, "file_id", source["file_id"])
    raise BadRequest(f"invalid {kind} source {source.get('type')!r}")


def _anthropic(messages: list[dict[str, Any]]) -> Iterator[Seen]:
    for m in messages:
        for block in _parts(m.get("content")):
            if block.get("type") == "tool_result":
                for inner in _parts(block.get("content")):
                    if inner.get("type") not in ("text", "image", "document"):
                        raise BadRequest(f"invalid tool_result block {inner.get('type')!r}")
                    if (seen := _anthropic_block("tool", inner)) is not None:
                        yield seen
            elif (seen := _anthropic_block("user", block)) is not None:
                if m.get("role") != "user":
                    raise BadRequest("only user turns take images and documents")
                yield seen


def _count_cache_marks(body: dict[str, Any]) -> None:
    marks = sum(1 for _, mark in _anthropic_segments(body) if mark)
    if marks > 4:
        raise BadRequest(
            f"A maximum of 4 blocks with cache_control may be provided. Found {marks}."
        )


# ------------------------------------------------------------------ prompt cache


@dataclass
class Tokens:
    input: int
    output: int
    cached: int = 0
    """Read from the cache (part of `input`)."""
    written: int = 0
    """Anthropic: written to the cache by this request (part of `input`)."""


def _tokens(segment: Any) -> int:
    return max(1, len(json.dumps(segment, sort_keys=True)) // 4)


def _clean(block: Any) -> Any:
    return (
        {k: v for k, v in block.items() if k != "cache_control"}
        if isinstance(block, dict)
        else block
    )


def _anthropic_segments(body: dict[str, Any]) -> list[tuple[Any, bool]]:
    """The prompt in Anthropic's cache order (tools, system, messages), block by block, each
    with whether it carries a cache mark."""
    out: list[tuple[Any, bool]] = [
        (_clean(t), "cache_control" in t) for t in body.get("tools") or []
    ]
    system = body.get("system")
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system or []
    out += [(_clean(b), "cache_control" in b) for b in blocks]
    for m in body.get("messages") or []:
        content = m.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        out += [((m.get("role"), _clean(b)), "cache_control" in b) for b in parts]
    return out


def _openai_segments(path: str, body: dict[str, Any]) -> list[Any]:
    items = body.get("messages") if path == "/v1/chat/completions" else body.get("input")
    if isinstance(items, str):
        items = [items]
    return [body.get("tools"), body.get("instructions"), *(items or [])]


class PromptCache:
    MIN_TOKENS = 1024
    OPENAI_STEP = 128
    LOOKBACK = 20

    def __init__(self) -> None:
        self._openai: dict[str, set[str]] = {}
        self._anthropic: set[str] = set()

    def usage(self, path: str, body: dict[str, Any], output: int) -> Tokens:
        if path == "/v1/messages":
            return self._anthropic_usage(body, output)
        segments = _openai_segments(path, body)
        hashes, totals = _prefixes(segments)
        seen = self._openai.setdefault(str(body.get("prompt_cache_key") or ""), set())
        hit = max((t for h, t in zip(hashes, totals, strict=True) if h in seen), default=0)
        cached = hit // self.OPENAI_STEP * self.OPENAI_STEP if hit >= self.MIN_TOKENS else 0
        seen.update(hashes)
        return Tokens(input=totals[-1], output=output, cached=cached)

    def _anthropic_usage(self, body: dict[str, Any], output: int) -> Tokens:
        segments = _anthropic_segments(body)
        hashes, totals = _prefixes([s for s, _ in segments])
        marks = [i for i, (_, mark) in enumerate(segments) if mark]
        read = 0
        for mark in marks:
            for i in range(mark, max(-1, mark - self.LOOKBACK - 1), -1):
                if hashes[i] in self._anthropic:
                    read = max(read, totals[i])
                    break
        written = 0
        if marks and totals[marks[-1]] >= self.MIN_TOKENS:
            written = totals[marks[-1]] - read
        self._anthropic.update(hashes[m] for m in marks if totals[m] >= self.MIN_TOKENS)
        return Tokens(input=totals[-1], output=output, cached=read, written=max(0, written))


def _prefixes(segments: list[Any]) -> tuple[list[str], list[int]]:
    """Each prefix's hash and token count, after every segment."""
    digest = hashlib.sha256()
    hashes, totals, total = [], [], 0
    for segment in segments:
        digest.update(json.dumps(segment, sort_keys=True).encode())
        hashes.append(digest.copy().hexdigest())
        total += _tokens(segment)
        totals.append(total)
    return hashes or [""], totals or [0]


def prompt_tokens(path: str, body: dict[str, Any]) -> int:
    """The prompt's tokens as this server counts them (tools, instructions, messages)."""
    if path == "/v1/messages":
        return sum(_tokens(segment) for segment, _ in _anthropic_segments(body))
    return sum(_tokens(segment) for segment in _openai_segments(path, body))
