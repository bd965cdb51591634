"""Images and files in each wire format's content parts, and back.

Where a format has no way to carry an attachment (an image by file id in Chat Completions, any
attachment in a Chat Completions tool result, a Word file for Anthropic), the conversion raises
`UnsupportedContent` with one line that says what and where: the model activity fails the call
without retrying it, since a retry would be refused the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable_agent.wire import Attachment, File, Image

from ._common import Wire

PDF = "application/pdf"


class UnsupportedContent(ValueError):
    """An attachment the target format cannot carry."""


def _inline(part: Attachment, fmt: str) -> None:
    if part.stored is not None:
        raise UnsupportedContent(
            f"{fmt}: an attachment in payload storage must be resolved first (the model "
            "activity does it)"
        )


def _describe(part: Attachment) -> str:
    return "an image" if isinstance(part, Image) else f"a file ({part.media_type or 'by url'})"


# ------------------------------------------------------------------ OpenAI Chat Completions


def chat_part(part: Attachment) -> Wire:
    fmt = "Chat Completions"
    _inline(part, fmt)
    if isinstance(part, Image):
        if part.file_id is not None:
            raise UnsupportedContent(f"{fmt} cannot take an image by file id: use a URL or bytes")
        return {"type": "image_url", "image_url": {"url": part.url or part.data_url()}}
    if part.url is not None:
        raise UnsupportedContent(f"{fmt} cannot take a file by URL: use bytes or a file id")
    if part.file_id is not None:
        return {"type": "file", "file": {"file_id": part.file_id}}
    return {"type": "file", "file": {"file_data": part.data_url(), "filename": _name(part)}}


def from_chat_part(wire: Mapping[str, Any]) -> Attachment | None:
    kind = wire.get("type")
    if kind == "image_url":
        return Image(url=wire["image_url"]["url"])
    if kind == "file":
        f = wire["file"]
        if f.get("file_id"):
            return File(file_id=f["file_id"], filename=f.get("filename"))
        return File(url=f["file_data"], filename=f.get("filename"))  # a data: URL
    return None


# ------------------------------------------------------------------ OpenAI Responses


def responses_part(part: Attachment) -> Wire:
    _inline(part, "Responses")
    if isinstance(part, Image):
        wire: Wire = {"type": "input_image", "detail": "auto"}
        if part.file_id is not None:
            wire["file_id"] = part.file_id
        else:
            wire["image_url"] = part.url or part.data_url()
        return wire
    if part.file_id is not None:
        return {"type": "input_file", "file_id": part.file_id}
    if part.url is not None:
        return {"type": "input_file", "file_url": part.url}
    return {"type": "input_file", "file_data": part.data_url(), "filename": _name(part)}


def from_responses_part(wire: Mapping[str, Any]) -> Attachment | None:
    kind = wire.get("type")
    if kind == "input_image":
        if wire.get("file_id"):
            return Image(file_id=wire["file_id"])
        return Image(url=wire["image_url"])
    if kind == "input_file":
        name = wire.get("filename")
        if wire.get("file_id"):
            return File(file_id=wire["file_id"], filename=name)
        if wire.get("file_url"):
            return File(url=wire["file_url"], filename=name)
        return File(url=wire["file_data"], filename=name)
    return None


# ------------------------------------------------------------------ Anthropic Messages


def anthropic_block(part: Attachment) -> Wire:
    fmt = "Anthropic Messages"
    _inline(part, fmt)
    if part.url is not None:
        source: Wire = {"type": "url", "url": part.url}
    elif part.file_id is not None:
        source = {"type": "file", "file_id": part.file_id}
    elif isinstance(part, File) and part.media_type == "text/plain":
        assert part.data is not None  # the one source left
        source = {"type": "text", "media_type": "text/plain", "data": part.data.decode()}
    else:
        if isinstance(part, File) and part.media_type != PDF:
            raise UnsupportedContent(
                f"{fmt} takes documents as PDF or plain text, not {_describe(part)}"
            )
        source = {"type": "base64", "media_type": part.media_type, "data": part.base64()}
    if isinstance(part, Image):
        return {"type": "image", "source": source}
    block: Wire = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    return block


def from_anthropic_block(wire: Mapping[str, Any]) -> Attachment | None:
    kind = wire.get("type")
    if kind not in ("image", "document"):
        return None
    source = wire["source"]
    fields: dict[str, Any] = {}
    match source.get("type"):
        case "url":
            fields["url"] = source["url"]
        case "file":
            fields["file_id"] = source["file_id"]
        case "text":
            fields.update(data=source["data"].encode(), media_type="text/plain")
        case _:
            fields.update(url=f"data:{source['media_type']};base64,{source['data']}")
    if kind == "image":
        return Image(**fields)
    return File(**fields, filename=wire.get("title"))


def _name(part: File) -> str:
    """Chat Completions and Responses want a filename with file bytes."""
    return part.filename or ("document.pdf" if part.media_type == PDF else "file")
