"""The encryption codec: round trips, key rotation, tampering, and its one-line errors."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from durable_agent.encryption import (
    KEY_FILE_VARIABLE,
    KEYS_VARIABLE,
    DecryptionError,
    EncryptionCodec,
    EncryptionKeyError,
    KeyRing,
)
from durable_agent.storage import data_converter

from .codec import NEW, OLD
from .processes import BIN, free_port

# --- the codec ---------------------------------------------------------------------------------


def ring(text: str) -> EncryptionCodec:
    return EncryptionCodec(KeyRing.parse(text))


async def test_round_trip_hides_the_value_and_restores_it() -> None:
    converter = data_converter(encryption=ring(OLD))
    value = {"prompt": "the secret plan " * 20, "n": 1}
    [payload] = await converter.encode([value])
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert payload.metadata["encryption-key-id"] == b"old"
    assert payload.metadata["encryption-compression"] == b"zlib"  # 340 repetitive bytes shrink
    assert b"secret" not in payload.SerializeToString()
    assert await converter.decode([payload], [dict]) == [value]


async def test_rotation_new_payloads_use_the_current_key_old_ones_still_read() -> None:
    [sealed_before] = await ring(OLD).encode([Payload(data=b"before rotation")])
    rotated = ring(f"{NEW},{OLD}")
    [sealed_after] = await rotated.encode([Payload(data=b"after rotation")])
    assert sealed_after.metadata["encryption-key-id"] == b"new"
    opened = await rotated.decode([sealed_before, sealed_after])
    assert [p.data for p in opened] == [b"before rotation", b"after rotation"]


async def test_an_unknown_key_id_is_one_clear_line() -> None:
    [sealed] = await ring(OLD).encode([Payload(data=b"x")])
    with pytest.raises(DecryptionError) as error:
        await ring(NEW).decode([sealed])
    message = str(error.value)
    assert "'old'" in message and KEYS_VARIABLE in message and "\n" not in message


async def test_tampered_ciphertext_or_metadata_is_refused() -> None:
    codec = ring(f"{NEW},{OLD}")
    [sealed] = await codec.encode([Payload(data=b"pay 10 to alice" * 10)])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata["encryption-key-id"] = b"old"  # a known id, but not the sealing key
    uncompressed = Payload()
    uncompressed.CopyFrom(sealed)
    del uncompressed.metadata["encryption-compression"]
    for tampered in (flipped, relabelled, uncompressed):
        with pytest.raises(DecryptionError, match="failed authentication"):
            await codec.decode([tampered])


async def test_plaintext_payloads_pass_through_for_recorded_histories() -> None:
    plain = (await data_converter().encode(["recorded before encryption"]))[0]
    assert plain.metadata["encoding"] == b"json/plain"
    assert await ring(OLD).decode([plain]) == [plain]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("nokey", "entry 1 is not kid:base64key"),
        ("k1:not*base64", "key 'k1' is not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "key 'k1' is 5 bytes; AES-256 needs 32"),
        (f"{OLD},{OLD}", "key id 'old' appears twice"),
        (" , ", "holds no key"),
    ],
    # Named, not shown: a random key in a test id differs between pytest-xdist's workers.
    ids=["no-key-id", "not-base64", "too-short", "id-twice", "empty"],
)
def test_a_malformed_key_setting_is_one_line_without_the_key(setting: str, expected: str) -> None:
    with pytest.raises(EncryptionKeyError) as error:
        KeyRing.from_environment({KEYS_VARIABLE: setting})
    message = str(error.value)
    assert expected in message and "\n" not in message
    assert OLD.partition(":")[2] not in message


def test_keys_from_a_file_and_never_both_settings(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# rotated 2026-11\n{NEW}\n{OLD}\n")
    found = KeyRing.from_environment({KEY_FILE_VARIABLE: str(keys)})
    assert found is not None and (found.current_id, list(found.keys)) == ("new", ["new", "old"])
    assert NEW.partition(":")[2] not in repr(found) + repr(EncryptionCodec(found))
    with pytest.raises(EncryptionKeyError, match="not both"):
        KeyRing.from_environment({KEY_FILE_VARIABLE: str(keys), KEYS_VARIABLE: NEW})
    assert KeyRing.from_environment({}) is None


def test_the_cli_reports_a_malformed_key_in_one_line() -> None:
    done = subprocess.run(
        [str(BIN / "durable-agent"), "codec-server", "--port", str(free_port())],
        env={**os.environ, KEYS_VARIABLE: "k1:c2hvcnQ="},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: EncryptionKeyError: DURABLE_AGENT_ENCRYPTION_KEYS: key 'k1' is 5 bytes; AES-256 "
        "needs 32 (`durable-agent keygen`) (--debug shows the traceback)"
    ]


def test_keygen_prints_an_entry_the_setting_takes() -> None:
    done = subprocess.run(
        [str(BIN / "durable-agent"), "keygen", "--id", "k7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = KeyRing.parse(done.stdout.strip())
    assert found.current_id == "k7" and len(found.keys["k7"]) == 32
