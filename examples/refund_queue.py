"""A tiny durable job queue (SQLite) standing in for SQS, Kafka or a ticketing system.

The long-running `request_refund` tool puts a job on it keyed by the tool_call_id and returns;
a separate consumer (`python -m examples.refund_consumer`) processes jobs whenever it runs and
signals each result back into the waiting workflow, days later if need be.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path


def queue_path() -> Path:
    return Path(os.environ.get("REFUND_QUEUE_DB", ".durable-agent/refunds.db"))


@dataclass
class RefundJob:
    workflow_id: str
    tool_call_id: str
    order_id: str
    amount: float


def _connect() -> sqlite3.Connection:
    path = queue_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE IF NOT EXISTS jobs (tool_call_id TEXT PRIMARY KEY, body TEXT NOT NULL,"
        " done INTEGER NOT NULL DEFAULT 0)"
    )
    return db


def enqueue(job: RefundJob) -> bool:
    """Idempotent by tool_call_id: a retried activity does not enqueue the refund twice."""
    with _connect() as db:
        cursor = db.execute(
            "INSERT OR IGNORE INTO jobs (tool_call_id, body) VALUES (?, ?)",
            (job.tool_call_id, json.dumps(job.__dict__)),
        )
        return cursor.rowcount == 1


def take_all() -> list[RefundJob]:
    with _connect() as db:
        rows = db.execute("SELECT body FROM jobs WHERE done = 0 ORDER BY rowid").fetchall()
    return [RefundJob(**json.loads(body)) for (body,) in rows]


def mark_done(job: RefundJob) -> None:
    with _connect() as db:
        db.execute("UPDATE jobs SET done = 1 WHERE tool_call_id = ?", (job.tool_call_id,))
