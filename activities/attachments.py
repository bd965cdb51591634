"""Attachment bytes in payload storage: moved there before they enter a run, read back by the
model activity just before a provider call.

A run's conversation travels in many payloads: the run's input, model activity inputs on a cache
miss, snapshots across continue-as-new, the result, `history` pages. Bytes inline would ride in
each of them (a 5 MB image, base64, in every one). So bytes of `ATTACHMENT_INLINE_BYTES` or more
are encoded once through the data converter with a threshold of 0, which stores them with its
codec (encrypted when encryption is on) and its storage driver (local directory, S3, GCS), and
the attachment keeps the small reference payload that comes back (`stored`, base64). Without
external storage configured, bytes stay inline.
"""

from __future__ import annotations

import base64
import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from durable_agent.wire import Attachment, Message, ToolMessage, UserMessage

ATTACHMENT_INLINE_BYTES = 16 * 1024
"""Smaller bytes stay inline: a reference payload is a few hundred bytes itself."""


async def offload(converter: DataConverter, attachments: Sequence[Attachment]) -> list[Attachment]:
    """`attachments` with large bytes moved to payload storage (as they are without storage)."""
    storage = converter.external_storage
    if storage is None or not any(_large(a) for a in attachments):
        return list(attachments)
    always = dataclasses.replace(
        converter, external_storage=dataclasses.replace(storage, payload_size_threshold=0)
    )
    out: list[Attachment] = []
    for a in attachments:
        if _large(a):
            [reference] = await always.encode([a.data])
            kept = reference.SerializeToString()
            # A driver selector may keep a payload inline: then the bytes stay as they were.
            if len(kept) < len(a.data or b""):
                a = a.model_copy(update={"data": None, "stored": base64.b64encode(kept).decode()})
        out.append(a)
    return out


async def offload_messages(converter: DataConverter, messages: Sequence[Message]) -> list[Message]:
    """Messages with their attachments' large bytes in payload storage."""
    return [
        m.model_copy(update={"attachments": await offload(converter, m.attachments)})
        if isinstance(m, UserMessage | ToolMessage) and m.attachments
        else m
        for m in messages
    ]


class StoredBytes:
    """Reads stored attachments back, keeping the latest ones: a run sends its image with every
    model call, and reading and decrypting 5 MB a turn would be wasted work."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes

    async def resolve(
        self, converter: Callable[[], DataConverter], messages: Sequence[Message]
    ) -> list[Message]:
        """Messages with every `stored` attachment's bytes inline again, for a provider.
        `converter` (the worker's, with its storage and codec) is asked for only when needed."""
        out: list[Message] = []
        for m in messages:
            if isinstance(m, UserMessage | ToolMessage) and any(a.stored for a in m.attachments):
                parts = [await self._inline(converter(), a) for a in m.attachments]
                m = m.model_copy(update={"attachments": parts})
            out.append(m)
        return out

    async def _inline(self, converter: DataConverter, part: Attachment) -> Attachment:
        if part.stored is None:
            return part
        data = self._kept.get(part.stored)
        if data is None:
            [data] = await converter.decode(
                [Payload.FromString(base64.b64decode(part.stored))], [bytes]
            )
            self._keep(part.stored, data)
        else:
            self._kept.move_to_end(part.stored)
        return part.model_copy(update={"stored": None, "data": data})

    def _keep(self, key: str, data: bytes) -> None:
        if len(data) > self._max_bytes:
            return
        self._kept[key] = data
        self._bytes += len(data)
        while self._bytes > self._max_bytes:
            _, dropped = self._kept.popitem(last=False)
            self._bytes -= len(dropped)


def _large(part: Attachment) -> bool:
    return part.data is not None and len(part.data) >= ATTACHMENT_INLINE_BYTES
