"""Payloads encrypted at rest: an AES-256-GCM payload codec whose keys rotate.

Every payload the SDK writes (workflow input and result, activity arguments and results,
signals, updates, queries, memos, failure messages) is serialized whole, compressed when that
makes it smaller, and sealed with the current key. The key id travels in the payload's metadata,
so a reader decrypts with whichever known key sealed it: rotate by putting a new key first and
keeping the old ones until no open run needs them. Keys come from the environment only, never
from history:

- `DURABLE_AGENT_ENCRYPTION_KEYS="kid2:BASE64KEY,kid1:BASE64KEY"` (the first is current), or
- `DURABLE_AGENT_ENCRYPTION_KEY_FILE=/path` holding the same entries, one a line.

Payloads without our metadata pass through on decode, so recorded plaintext histories and runs
started before encryption was turned on still read.

Compression, measured (zlib, per payload, one core of our 2-core machines): the JSON of a 20-turn
conversation with 2.5 KB JSON tool outputs is 56,452 bytes; level 1 makes it 11,390 bytes in
380 µs (117 µs to inflate), level 6 9,482 bytes in 955 µs. The 698 payloads of our recorded
histories (median 189 bytes) total 632,401 bytes; level 1 takes them to 116,406 (keeping the
original where deflate does not shrink it, 282 of them) at 15 µs a payload, level 6 to 113,649
at 17 µs. Against a ~50 ms turn and history bytes that grow with every turn, level 1 pays: 5x
fewer bytes in the server's database for well under a millisecond a turn; level 6 gains a few
percent more for 2.5x the CPU. AES-GCM itself costs ~2 µs a message, 19 µs on the 56 KB
conversation. Compressing before encrypting lets ciphertext length depend on content; someone who
can both inject text into a conversation and watch the stored sizes could learn about the rest
of it, which we judge out of reach of an at-rest threat model.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

__all__ = [
    "KEYS_VARIABLE",
    "KEY_FILE_VARIABLE",
    "DecryptionError",
    "EncryptionCodec",
    "EncryptionKeyError",
    "KeyRing",
    "generate_key",
]

KEYS_VARIABLE = "DURABLE_AGENT_ENCRYPTION_KEYS"
KEY_FILE_VARIABLE = "DURABLE_AGENT_ENCRYPTION_KEY_FILE"

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
COMPRESSION = "encryption-compression"
_ZLIB = b"zlib"
_ZLIB_LEVEL = 1  # see the module docstring: level 6 costs 2.5x for a few percent
_NONCE_BYTES = 12
_KEY_BYTES = 32  # AES-256
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class EncryptionKeyError(ValueError):
    """The key setting is malformed. The message is one line and never holds key material."""


class DecryptionError(ValueError):
    """A payload cannot be decrypted: unknown key id, or ciphertext that fails authentication."""


def generate_key() -> str:
    """A new random AES-256 key, base64 as the key settings take it."""
    return base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode()


@dataclass(frozen=True)
class KeyRing:
    """Known keys by id; `current_id` seals new payloads. Its repr shows ids only."""

    current_id: str
    keys: Mapping[str, bytes] = field(repr=False)

    @classmethod
    def parse(cls, text: str, source: str = KEYS_VARIABLE) -> KeyRing:
        """`kid:base64key` entries separated by commas or new lines, the first current; lines
        starting with `#` are comments. Errors name `source` and the entry, never the key."""
        entries = [
            entry.strip()
            for line in text.splitlines()
            if not line.strip().startswith("#")
            for entry in line.split(",")
            if entry.strip()
        ]
        if not entries:
            raise EncryptionKeyError(f"{source} holds no key: expected kid:base64key[,kid:key]")
        keys: dict[str, bytes] = {}
        for number, entry in enumerate(entries, 1):
            kid, colon, encoded = entry.partition(":")
            kid = kid.strip()
            if not colon or not _KEY_ID.fullmatch(kid):
                raise EncryptionKeyError(
                    f"{source}: entry {number} is not kid:base64key (a key id of letters, "
                    "digits, '.', '_' or '-', then ':' and the key)"
                )
            if kid in keys:
                raise EncryptionKeyError(f"{source}: key id {kid!r} appears twice")
            keys[kid] = _decode_key(encoded.strip(), f"{source}: key {kid!r}")
        return cls(current_id=next(iter(keys)), keys=keys)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> KeyRing | None:
        """The keys from `KEYS_VARIABLE` or the file named by `KEY_FILE_VARIABLE`; None when
        neither is set (encryption off)."""
        env = os.environ if environ is None else environ
        inline, path = env.get(KEYS_VARIABLE, "").strip(), env.get(KEY_FILE_VARIABLE, "").strip()
        if inline and path:
            raise EncryptionKeyError(f"set {KEYS_VARIABLE} or {KEY_FILE_VARIABLE}, not both")
        if inline:
            return cls.parse(inline)
        if path:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise EncryptionKeyError(
                    f"{KEY_FILE_VARIABLE}: cannot read {path}: {exc.strerror}"
                ) from None
            return cls.parse(text, f"{KEY_FILE_VARIABLE} ({path})")
        return None


def _decode_key(encoded: str, what: str) -> bytes:
    try:  # standard or URL-safe alphabet, padding required
        key = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionKeyError(
            f"{what} is not base64 (make one with `durable-agent keygen`)"
        ) from None
    if len(key) != _KEY_BYTES:
        raise EncryptionKeyError(
            f"{what} is {len(key)} bytes; AES-256 needs {_KEY_BYTES} (`durable-agent keygen`)"
        )
    return key


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over the whole serialized payload (its metadata too), zlib level 1 first when
    that is smaller. The key id and compression flag are authenticated as associated data."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.keys.items()}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> EncryptionCodec | None:
        keys = KeyRing.from_environment(environ)
        return cls(keys) if keys is not None else None

    def __repr__(self) -> str:
        return f"EncryptionCodec(current={self.keys.current_id!r}, known={list(self.keys.keys)})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        plain = payload.SerializeToString()
        compressed = zlib.compress(plain, _ZLIB_LEVEL)
        compression = _ZLIB if len(compressed) < len(plain) else b""
        kid = self.keys.current_id
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(
            nonce, compressed if compression else plain, _associated(kid, compression)
        )
        metadata = {"encoding": ENCODING, KEY_ID: kid.encode()}
        if compression:
            metadata[COMPRESSION] = compression
        return Payload(metadata=metadata, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; one without our encoding (plaintext) is returned as it is."""
        if payload.metadata.get("encoding") != ENCODING or KEY_ID not in payload.metadata:
            return payload
        kid = payload.metadata[KEY_ID].decode(errors="replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise DecryptionError(
                f"payload encrypted with key id {kid!r}, which is not among the known keys "
                f"{sorted(self._ciphers)}: add it to {KEYS_VARIABLE} or {KEY_FILE_VARIABLE}"
            )
        compression = payload.metadata.get(COMPRESSION, b"")
        if compression not in (b"", _ZLIB):
            raise DecryptionError(f"payload compressed with unknown {compression!r}")
        nonce, sealed = payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:]
        try:
            opened = cipher.decrypt(nonce, sealed, _associated(kid, compression))
        except InvalidTag:
            raise DecryptionError(
                f"payload under key id {kid!r} failed authentication: it was altered, or "
                "that id names a different key here than where it was written"
            ) from None
        original = Payload()
        original.ParseFromString(zlib.decompress(opened) if compression else opened)
        return original


def _associated(kid: str, compression: bytes) -> bytes:
    """Binds the metadata to the ciphertext: editing the key id or the flag fails the tag."""
    return b"durable-agent/v1|" + kid.encode() + b"|" + compression
