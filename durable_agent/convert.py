"""`durable_agent.convert`, as earlier versions named it: the conversions now live beside the
providers that use them (`durable_agent.activities.providers.convert`). Kept so that users'
imports (`from durable_agent.convert import from_openai_chat`) go on working."""

from __future__ import annotations

from .activities.providers.convert import (
    ERROR_PREFIX,
    AnthropicPrompt,
    UnsupportedContent,
    Wire,
    anthropic_tools,
    from_anthropic,
    from_openai_chat,
    from_openai_responses,
    openai_chat_tools,
    openai_responses_tools,
    to_anthropic,
    to_openai_chat,
    to_openai_responses,
)

__all__ = [
    "ERROR_PREFIX",
    "AnthropicPrompt",
    "UnsupportedContent",
    "Wire",
    "anthropic_tools",
    "from_anthropic",
    "from_openai_chat",
    "from_openai_responses",
    "openai_chat_tools",
    "openai_responses_tools",
    "to_anthropic",
    "to_openai_chat",
    "to_openai_responses",
]
