"""Deltas as bytes on the bus, sealed with the keys the run's payloads use.

An entry is a Temporal `Payload` (the data converter's JSON of a `ModelDelta`) passed through
the converter's payload codec, serialized. With encryption at rest on
(`durable_agent.encryption`), the codec is the AES-GCM one: the bus, Redis included, holds only
ciphertext, and a reader without the keys cannot read the text (it says live text is
unavailable). External payload storage is not used: a delta is small and short-lived.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from ..wire import ModelDelta


class EntryCodec:
    def __init__(self, converter: DataConverter) -> None:
        self._payloads = converter.payload_converter
        self._codec = converter.payload_codec

    async def encode(self, deltas: Sequence[ModelDelta]) -> list[bytes]:
        payloads = self._payloads.to_payloads(deltas)
        if self._codec is not None:
            payloads = await self._codec.encode(payloads)
        return [p.SerializeToString() for p in payloads]

    async def decode(self, data: Sequence[bytes]) -> list[ModelDelta]:
        """Raises ValueError (among others, `encryption.DecryptionError`) for what this reader
        cannot read."""
        payloads = [Payload.FromString(d) for d in data]
        if self._codec is not None:
            payloads = await self._codec.decode(payloads)
        return [self._payloads.from_payload(p, ModelDelta) for p in payloads]
