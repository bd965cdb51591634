"""AG-UI content parts (AG-UI 1.0: `ImagePart`, `DocumentPart`, ... with a data, URL or file
source) as the attachments a run carries.

A user message's parts and a resume payload's `attachments` map to `Image` and `File`; what we
cannot carry is refused with one line (an HTTP 422 before any event, as other bad input is):
audio and video parts (no provider input we send takes them), and URLs a provider cannot fetch
(anything but `https://` and `data:`). Large bytes are not moved here: `AgentClient.send`,
`resolve` and `decide` put them in payload storage as on every other path.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import assert_never

from ag_ui.core import (
    AudioPart,
    ContentPart,
    DataSource,
    DocumentPart,
    FileSource,
    ImagePart,
    TextPart,
    UrlSource,
    VideoPart,
)
from fastapi import HTTPException
from pydantic import ValidationError

from ..wire import Attachment, File, Image

__all__ = ["FETCHABLE", "attachments_of", "text_of"]

FETCHABLE = ("https://", "data:")
"""URLs an attachment may carry: providers fetch https themselves; a data: URL is bytes."""


def text_of(parts: Sequence[ContentPart]) -> str:
    return "\n".join(p.text for p in parts if isinstance(p, TextPart))


def attachments_of(parts: Sequence[ContentPart], where: str) -> list[Attachment]:
    """The media parts of `parts` as attachments, in order; `where` names them in a refusal."""
    out: list[Attachment] = []
    for n, part in enumerate(parts):
        if isinstance(part, TextPart):
            continue
        at = f"{where}[{n}]"
        if isinstance(part, AudioPart | VideoPart):
            raise HTTPException(
                422, f"{at}: {part.type} parts are not supported (images and documents are)"
            )
        out.append(_attachment(part, at))
    return out


def _attachment(part: ImagePart | DocumentPart, at: str) -> Attachment:
    source = part.source
    fields: dict[str, object] = {"media_type": source.mime_type}
    match source:
        case DataSource(value=value):
            try:
                fields["data"] = base64.b64decode(value, validate=True)
            except binascii.Error:
                raise HTTPException(422, f"{at}: the data source's base64 is not valid") from None
        case UrlSource(value=url):
            if not url.startswith(FETCHABLE):
                shown = url if len(url) <= 60 else url[:57] + "..."
                raise HTTPException(
                    422, f"{at}: a provider cannot fetch {shown!r} (give https://, data: or bytes)"
                )
            fields["url"] = url
        case FileSource(value=file_id):
            fields["file_id"] = file_id
        case _:
            assert_never(source)
    try:
        if isinstance(part, ImagePart):
            return Image.model_validate(fields)
        name = part.metadata.get("filename") if isinstance(part.metadata, dict) else None
        return File.model_validate({**fields, "filename": name if isinstance(name, str) else None})
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors(include_url=False))
        raise HTTPException(422, f"{at}: {problems}") from None
