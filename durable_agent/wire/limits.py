"""Size limits of what crosses Temporal, each set below the Temporal limit it derives from.

Temporal's own limits (server defaults, the same on Temporal Cloud) come first; every limit of
ours names the one it keeps us under. `tests/test_limits.py` checks the relations.
"""

from __future__ import annotations

# ---------------------------------------------------------------- Temporal's limits
GRPC_MESSAGE_BYTES = 4 * 1024 * 1024
"""One gRPC message between worker, client and server: a query answer or a workflow task's
completion (which carries every local activity result of the task) must fit in it."""

PAYLOAD_BYTES = 2 * 1024 * 1024
"""One payload (an activity input or result, a signal, the run's input): larger is refused."""

PAYLOAD_WARN_BYTES = 256 * 1024
"""The server warns about payloads above this size."""

# ---------------------------------------------------------------- ours
HISTORY_PAGE_BYTES = 2_000_000
"""Default page of the `history` query: under half a gRPC message, leaving room for JSON
escaping and the envelope. Followers ask again from `next` while `more` is set."""

TRANSCRIPT_PAGE_BYTES = 1_000_000
"""A page of the `transcript` query, read by a model or hook activity whose worker lacks the
conversation: a quarter of a gRPC message, as an activity may ask for several pages at once."""

LOCAL_FLUSH_BYTES = 1_000_000
"""Local-activity results held in one workflow task before a short timer ends the task: its
completion carries them all and must stay under a gRPC message. Changing it moves a timer
command of fast-mode runs: the replay corpus must still replay."""

EXTERNAL_PAYLOAD_BYTES = PAYLOAD_WARN_BYTES
"""Payloads above this go to external storage when it is configured (below the warning)."""

REF_MIN_CHARS = 1024
"""Tool results at least this long go to the next model call by ref (a 32-character name)
instead of a second copy: shorter ones would save next to nothing."""
