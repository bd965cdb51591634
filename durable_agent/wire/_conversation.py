"""The provider-neutral conversation: plain pydantic data, never callables.

A conversation is an ordered list of items. Messages (system, user, assistant, tool) are what a
model sees; status events share the same stream so that readers see one timeline, but
`prompt_messages` drops them before anything reaches a model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    field_validator,
    model_serializer,
)

from ._attachments import Attachment


class Data(BaseModel):
    """Base for everything that crosses Temporal: unknown fields are refused, not dropped."""

    model_config = ConfigDict(extra="forbid")


class Extensible(Data):
    """For shapes that gained fields: the fields named in `_new_fields` are left out of the
    JSON while they hold their defaults, so that workers from before them, which refuse
    unknown fields, still read what does not use them."""

    _new_fields: ClassVar[tuple[str, ...]] = ()
    _new_defaults: ClassVar[dict[str, Any]] = {}
    """Each new field's default, computed once per class: `FieldInfo.get_default` inspects the
    factory's signature on every call, which cost 8% of a worker's CPU a turn."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        fields = cls.model_fields
        cls._new_defaults = {
            name: fields[name].get_default(call_default_factory=True) for name in cls._new_fields
        }

    @model_serializer(mode="wrap")
    def _omit_unused_new_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name, default in self._new_defaults.items():
                if getattr(self, name) == default:
                    data.pop(name, None)
        return data


class ToolCall(Data):
    """One call the model asked for. `arguments` is the JSON text exactly as the model sent it."""

    id: str
    name: str
    arguments: str = "{}"


class SystemMessage(Data):
    role: Literal["system"] = "system"
    content: str


class UserMessage(Extensible):
    _new_fields = ("attachments",)

    role: Literal["user"] = "user"
    content: str
    name: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    """Images and files the model sees after the text."""


class AssistantMessage(Data):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    agent: str | None = None
    """Which agent produced it: after a handoff several agents share one conversation."""

    @field_validator("tool_calls", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        # OpenAI sends `"tool_calls": null`, and the `temporal` CLI prints empty lists as null.
        return [] if value is None else value


class ToolMessage(Extensible):
    """The single result of one tool call, paired by `tool_call_id`."""

    _new_fields = ("attachments",)

    role: Literal["tool"] = "tool"
    tool_call_id: str
    name: str | None = None
    content: str
    is_error: bool = False
    attachments: list[Attachment] = Field(default_factory=list)
    """Images and files the tool returned (`return Image(...)`), after the text."""


EventSource: TypeAlias = Literal["agent", "llm", "tool"]
EVENT_SOURCES: tuple[EventSource, ...] = get_args(EventSource)


class StatusEvent(Data):
    """Something that happened during the run; shown to readers, never sent to a model."""

    role: Literal["event"] = "event"
    source: EventSource
    kind: str
    at: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)


Message: TypeAlias = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]
Item: TypeAlias = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage | StatusEvent,
    Field(discriminator="role"),
]


class Usage(Extensible):
    _new_fields = ("cached_input_tokens",)

    requests: int = 0
    input_tokens: int = 0
    """Every input token, those read from the provider's prompt cache included."""
    output_tokens: int = 0
    cached_input_tokens: int = 0
    """The part of `input_tokens` the provider read from its prompt cache (billed lower)."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            requests=self.requests + other.requests,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
        )


def prompt_messages(items: list[Item]) -> list[Message]:
    """The messages a model may see: status events are dropped."""
    return [item for item in items if not isinstance(item, StatusEvent)]


def render_content(value: Any) -> str:
    """Tool results reach the model as text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return TypeAdapter(type(value)).dump_json(value).decode()
