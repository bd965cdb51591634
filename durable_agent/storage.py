"""Large payloads out of history: Temporal's external payload storage with a local driver.

A 100 KB tool output is fine inline, but a long conversation carried over continue-as-new, or a
final result with every message, passes Temporal's 2 MB payload limit. Payloads above the
threshold are written to a directory and history keeps a reference. The directory must be
shared by every worker and client of the namespace (one machine, or a shared volume); across
machines use Temporal's S3 (`temporalio.contrib.aws`) or GCS (`temporalio.contrib.gcp`)
drivers with `data_converter(storage=...)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    ExternalStorage,
    JSONPlainPayloadConverter,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

DEFAULT_DIR = Path(".durable-agent/payloads")
DEFAULT_THRESHOLD = 256 * 1024  # Temporal warns about payloads above 256 KiB


class LocalFileDriver(StorageDriver):
    """Content-addressed files: storing the same payload twice writes it once."""

    def __init__(self, directory: Path | str = DEFAULT_DIR) -> None:
        self.directory = Path(directory).resolve()

    def name(self) -> str:
        return "durable-agent-local"

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        return await asyncio.to_thread(self._store_all, payloads)

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        return await asyncio.to_thread(self._retrieve_all, claims)

    def _store_all(self, payloads: Sequence[Payload]) -> list[StorageDriverClaim]:
        self.directory.mkdir(parents=True, exist_ok=True)
        claims = []
        for payload in payloads:
            data = payload.SerializeToString()
            digest = hashlib.sha256(data).hexdigest()
            path = self.directory / digest
            if not path.exists():
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(data)
                tmp.replace(path)  # atomic: a reader never sees half a payload
            claims.append(StorageDriverClaim(claim_data={"sha256": digest}))
        return claims

    def _retrieve_all(self, claims: Sequence[StorageDriverClaim]) -> list[Payload]:
        payloads = []
        for claim in claims:
            digest = claim.claim_data["sha256"]
            data = (self.directory / digest).read_bytes()
            if hashlib.sha256(data).hexdigest() != digest:
                raise ValueError(f"stored payload {digest} is corrupt")
            payload = Payload()
            payload.ParseFromString(data)
            payloads.append(payload)
        return payloads


_PYDANTIC_JSON = PydanticJSONPlainPayloadConverter()


class SharedPydanticPayloadConverter(CompositePayloadConverter):
    """Pydantic JSON payloads through one shared JSON converter.

    The SDK builds a new payload converter for every copy of the data converter it makes,
    and with external storage on it copies the data converter for every payload and activity.
    A new `PydanticPayloadConverter` builds its own serializer and starts with an empty
    TypeAdapter cache: measured, a tenth of a busy worker's CPU. This one only assembles the
    shared, thread-safe converters.
    """

    def __init__(self) -> None:
        super().__init__(
            *(
                _PYDANTIC_JSON if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


def default_storage() -> ExternalStorage | None:
    """From DURABLE_AGENT_PAYLOAD_DIR (default .durable-agent/payloads) and
    DURABLE_AGENT_PAYLOAD_THRESHOLD (bytes; 0 turns external storage off)."""
    threshold = int(os.environ.get("DURABLE_AGENT_PAYLOAD_THRESHOLD", DEFAULT_THRESHOLD))
    if threshold <= 0:
        return None
    directory = os.environ.get("DURABLE_AGENT_PAYLOAD_DIR", str(DEFAULT_DIR))
    return ExternalStorage(drivers=[LocalFileDriver(directory)], payload_size_threshold=threshold)


def data_converter(storage: ExternalStorage | None = None) -> DataConverter:
    """Pydantic JSON payloads, with `storage` (default: `default_storage()`) for large ones."""
    storage = storage if storage is not None else default_storage()
    return DataConverter(
        payload_converter_class=SharedPydanticPayloadConverter, external_storage=storage
    )
