"""Payload storage: one converter everywhere, a location that does not depend on the working
directory, and a clear error naming the setting when a stored payload is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from durable_agent.storage import (
    DEFAULT_DIR,
    PAYLOAD_DIR_VARIABLE,
    LocalFileDriver,
    StoredPayloadMissing,
    default_storage,
)


def test_the_default_directory_is_absolute_and_the_same_from_any_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Regression: the default was `.durable-agent/payloads` relative to the working directory,
    so a client started from another folder could not read a run's large payloads."""
    monkeypatch.delenv(PAYLOAD_DIR_VARIABLE, raising=False)
    assert DEFAULT_DIR.is_absolute()
    monkeypatch.chdir(tmp_path)
    storage = default_storage()
    assert storage is not None
    [driver] = storage.drivers
    assert isinstance(driver, LocalFileDriver)
    assert driver.directory == DEFAULT_DIR.resolve()


async def test_a_missing_payload_names_the_setting(tmp_path: Path) -> None:
    writer = LocalFileDriver(tmp_path / "here")
    [claim] = writer._store_all([Payload(data=b"x" * 10)])
    reader = LocalFileDriver(tmp_path / "elsewhere")
    with pytest.raises(StoredPayloadMissing) as missing:
        reader._retrieve_all([claim])
    assert PAYLOAD_DIR_VARIABLE in str(missing.value)
    assert str(tmp_path / "elsewhere") in str(missing.value)
    assert writer._retrieve_all([claim])[0].data == b"x" * 10
