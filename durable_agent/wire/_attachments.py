"""Images and files a message carries beside its text: by URL, by bytes or by a provider's file id.

Bytes are raw in Python and base64 in JSON. Bytes larger than `limits.ATTACHMENT_INLINE_BYTES`
do not travel through a run: the client, the CLI and the tool activity move them to payload
storage first and the attachment keeps `stored`, a reference the model activity resolves. So a
5 MB image costs its bytes once, however many turns, snapshots and history pages carry it.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from pathlib import Path
from typing import Annotated, Literal, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator


class _Attachment(BaseModel):
    # As `Data` (unknown fields refused), which lives above this module.
    # JSON reads standard or URL-safe base64; it writes standard base64, as the APIs take it.
    model_config = ConfigDict(extra="forbid", val_json_bytes="base64")

    url: str | None = None
    """An `https://` address the provider fetches (a `data:` URL is taken apart into `data`)."""
    data: bytes | None = None
    file_id: str | None = None
    """A file uploaded to the provider beforehand (its Files API)."""
    stored: str | None = None
    """The bytes, moved to payload storage: resolved by the model activity, never by a reader."""
    media_type: str | None = None
    """`image/png`, `application/pdf`, ...: required with `data` or `stored`."""

    @model_validator(mode="before")
    @classmethod
    def _data_url(cls, value: object) -> object:
        """`url="data:<type>;base64,<bytes>"` (what browsers and `serve` clients send) becomes
        `data` and `media_type`, so it can go to payload storage like any bytes."""
        if isinstance(value, dict):
            url = value.get("url")
            if isinstance(url, str) and url.startswith("data:"):
                head, sep, body = url[5:].partition(",")
                media_type, _, encoding = head.partition(";")
                if not sep or encoding != "base64":
                    raise ValueError("a data: URL must be base64: data:<type>;base64,<data>")
                try:
                    data = base64.b64decode(body, validate=True)
                except binascii.Error:
                    raise ValueError("the data: URL's base64 is not valid") from None
                value = {k: v for k, v in value.items() if k != "url"}
                value.update(data=data, media_type=value.get("media_type") or media_type)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        sources = [s for s in ("url", "data", "file_id", "stored") if getattr(self, s) is not None]
        if len(sources) != 1:
            raise ValueError("an attachment has exactly one of url, data, file_id or stored")
        if sources[0] in ("data", "stored") and not self.media_type:
            raise ValueError("an attachment given by its bytes needs a media_type")
        return self

    @field_serializer("data", when_used="json")
    def _base64(self, data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode()

    def data_url(self) -> str:
        """`data:<media_type>;base64,...` of inline bytes (the model activity has resolved
        `stored` before a provider asks)."""
        if self.data is None:
            raise ValueError("this attachment's bytes are not inline")
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode()}"

    def base64(self) -> str:
        if self.data is None:
            raise ValueError("this attachment's bytes are not inline")
        return base64.b64encode(self.data).decode()

    @classmethod
    def from_path(cls, path: str | Path, media_type: str | None = None) -> Self:
        """The file's bytes, its media type guessed from its name unless given."""
        path = Path(path)
        kind = media_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        extra = {"filename": path.name} if "filename" in cls.model_fields else {}
        return cls(data=path.read_bytes(), media_type=kind, **extra)


class Image(_Attachment):
    """An image the model looks at: `Image(url=...)`, `Image(data=png, media_type="image/png")`,
    `Image(file_id=...)` or `Image.from_path("chart.png")`."""

    type: Literal["image"] = "image"


class File(_Attachment):
    """A document the model reads (PDF at least, on every provider): `File.from_path("a.pdf")`,
    `File(url=...)`, `File(file_id=...)`."""

    type: Literal["file"] = "file"
    filename: str | None = None


Attachment: TypeAlias = Annotated[Image | File, Field(discriminator="type")]


def attachment_from_path(path: str | Path) -> Image | File:
    """An `Image` for an image file, a `File` for anything else (what `--file` does)."""
    kind = mimetypes.guess_type(Path(path).name)[0] or "application/octet-stream"
    return Image.from_path(path, kind) if kind.startswith("image/") else File.from_path(path, kind)
