"""Large payloads out of history: Temporal's external payload storage with a local driver.

A 100 KB tool output is fine inline, but a long conversation carried over continue-as-new, or a
final result with every message, passes Temporal's 2 MB payload limit. Payloads above the
threshold are written to a directory and history keeps a reference. The directory must be
shared by every worker and client of the namespace: the default is an absolute per-user path
(so a client started from another folder reads it too), right for one machine; across machines
point DURABLE_AGENT_PAYLOAD_DIR at a shared volume, or use Temporal's S3
(`temporalio.contrib.aws`) or GCS (`temporalio.contrib.gcp`) drivers with
`data_converter(storage=...)`. A payload a process cannot find fails with an error that names
the setting, so a misconfigured worker is told what to fix instead of failing obscurely.

Worker, client, CLI, dev server, codec server and replayer all build their converter here,
so one setting (`encryption.KEYS_VARIABLE`) encrypts for all of them.
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
    DefaultFailureConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    ExternalStorage,
    JSONPlainPayloadConverter,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

from .encryption import EncryptionCodec
from .wire.limits import EXTERNAL_PAYLOAD_BYTES

PAYLOAD_DIR_VARIABLE = "DURABLE_AGENT_PAYLOAD_DIR"
DEFAULT_DIR = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / (
    "durable-agent/payloads"
)
DEFAULT_THRESHOLD = EXTERNAL_PAYLOAD_BYTES


class StoredPayloadMissing(LookupError):
    """A payload history refers to is not in this process's payload directory."""


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
            try:
                data = (self.directory / digest).read_bytes()
            except FileNotFoundError:
                raise StoredPayloadMissing(
                    f"stored payload {digest} is not in {self.directory}: every worker and "
                    f"client of the namespace must share {PAYLOAD_DIR_VARIABLE} (a shared volume "
                    "across machines), or use Temporal's S3/GCS storage driver"
                ) from None
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
    """From DURABLE_AGENT_PAYLOAD_DIR (default `DEFAULT_DIR`, absolute) and
    DURABLE_AGENT_PAYLOAD_THRESHOLD (bytes; 0 turns external storage off)."""
    threshold = int(os.environ.get("DURABLE_AGENT_PAYLOAD_THRESHOLD", DEFAULT_THRESHOLD))
    if threshold <= 0:
        return None
    directory = os.environ.get(PAYLOAD_DIR_VARIABLE) or str(DEFAULT_DIR)
    return ExternalStorage(drivers=[LocalFileDriver(directory)], payload_size_threshold=threshold)


def data_converter(
    storage: ExternalStorage | None = None, encryption: EncryptionCodec | None = None
) -> DataConverter:
    """Pydantic JSON payloads, with `storage` (default: `default_storage()`) for large ones,
    encrypted by `encryption` (default: from DURABLE_AGENT_ENCRYPTION_KEYS or _KEY_FILE; none
    when unset).

    The SDK runs the codec before the storage driver when writing and after it when reading
    (temporalio/converter/_data_converter.py, `_transform_outbound_payload`), so stored
    payloads are ciphertext too. With encryption on, failure messages and stack traces move
    into an encoded payload as well: a tool's error text is conversation data.
    """
    storage = storage if storage is not None else default_storage()
    codec = encryption if encryption is not None else EncryptionCodec.from_environment()
    return DataConverter(
        payload_converter_class=SharedPydanticPayloadConverter,
        external_storage=storage,
        payload_codec=codec,
        failure_converter_class=(
            DefaultFailureConverterWithEncodedAttributes if codec else DefaultFailureConverter
        ),
    )
