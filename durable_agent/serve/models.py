"""The request and response bodies of `durable-agent serve`'s JSON routes (OpenAPI at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field

from ..wire import Attachment, RunState, StatusInfo

__all__ = [
    "Cancelling",
    "Decision",
    "ErrorBody",
    "IdempotencyKey",
    "Message",
    "Resolution",
    "RunInfo",
    "RunSummary",
    "Sent",
    "StartRun",
    "Started",
]


_ATTACHMENTS = (
    "Images and files the model sees after the text: "
    '`{"type": "image", "url": "data:image/png;base64,..."}`, `{"type": "file", "url": '
    '"https://..."}` or `{"type": "file", "file_id": "..."}`. Large bytes go to payload '
    "storage: the run keeps a reference."
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRun(_Body):
    agent: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    thread_id: str | None = Field(
        default=None,
        min_length=1,
        description="A conversation's workflow id: starts it with this prompt if none is open,"
        " else the prompt is its next message (update-with-start).",
    )
    max_turns: int | None = Field(default=None, ge=1)
    conversation: bool = Field(default=False, description="Stay open for user messages.")
    attachments: list[Attachment] = Field(default_factory=list, description=_ATTACHMENTS)


class Started(BaseModel):
    workflow_id: str
    run_id: str


class Sent(Started):
    detail: str


class Message(_Body):
    content: str = Field(min_length=1)
    name: str | None = None
    attachments: list[Attachment] = Field(default_factory=list, description=_ATTACHMENTS)


class Decision(_Body):
    reason: str | None = None
    digest: str | None = Field(
        default=None, description="The pending call's digest: refused unless it still matches."
    )


class Resolution(_Body):
    content: Any = Field(description="The call's result: any JSON.")
    is_error: bool = False
    attachments: list[Attachment] = Field(default_factory=list, description=_ATTACHMENTS)


class RunSummary(BaseModel):
    workflow_id: str
    run_id: str
    agent: str | None
    status: RunState | None
    """The run's AgentStatus search attribute."""
    execution_status: str | None
    """Temporal's: running, completed, failed, terminated, ..."""
    start_time: datetime
    close_time: datetime | None


class RunInfo(RunSummary):
    task_queue: str
    state: StatusInfo | None
    state_error: str | None = None
    """Why `state` is missing (its query needs a worker)."""


class Cancelling(BaseModel):
    workflow_id: str
    detail: str


class ErrorBody(BaseModel):
    error: str


IdempotencyKey = Annotated[
    str | None,
    Header(description="Sent again with a retry, the request is applied once (its update id)."),
]
