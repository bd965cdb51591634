"""The append log tools write (FAULTS_LOG) and the effects store of the idempotency-key
pattern (FAULTS_EFFECTS): shared by every worker process and read by the storms."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

LOG_ENV = "FAULTS_LOG"
EFFECTS_ENV = "FAULTS_EFFECTS"


def write(kind: str, workflow_id: str, tool_call_id: str, **extra: Any) -> None:
    """One line, one `write` on an O_APPEND descriptor: lines from processes never interleave."""
    line = {"kind": kind, "wf": workflow_id, "id": tool_call_id, "pid": os.getpid()}
    data = json.dumps({**line, **extra, "t": time.time()}) + "\n"
    fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue  # a line cut by a SIGKILL mid-write (never seen: one write per line)
    return lines


def apply_once(key: str, result: str) -> bool:
    """The side effect, keyed: of any number of attempts exactly one applies it. False when
    an earlier attempt already did."""
    path = Path(os.environ[EFFECTS_ENV]) / key.replace("/", "__")
    draft = path.with_name(f"{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    draft.write_text(result)
    try:
        os.link(draft, path)  # atomic, and refused when the key exists: a whole file or none
    except FileExistsError:
        return False
    finally:
        draft.unlink()
    return True


def applied(key: str) -> str | None:
    """The result an earlier attempt recorded for `key`, if any."""
    path = Path(os.environ[EFFECTS_ENV]) / key.replace("/", "__")
    return path.read_text() if path.exists() else None
