"""The neutral conversation to and from provider wire formats, tool_call_ids kept exactly.

Used by the provider activities, and by users who bring a history from elsewhere:
`AgentClient.start("support", messages=from_openai_chat(history))`. Every pair round-trips:
`from_openai_chat(to_openai_chat(items))`, `from_anthropic(*to_anthropic(items))`. Status events
are dropped on the way out.

Only Anthropic's wire has a field for a failed tool result (`tool_result.is_error`). For OpenAI an
error result's content starts with `Error: ` (added unless it already starts so), the only way an
OpenAI model learns that the call failed; on the way back that prefix marks the result as an error
again and is removed. A tool result's `name` is taken back from the call it answers. Lost on a
round trip: the `agent` of an assistant message, a user message's `name` (Chat Completions would
take it, but only as `[A-Za-z0-9_-]{1,64}`, and refuses the whole request otherwise), an error
whose own text already began with `Error: ` (it comes back without those seven characters), and
for OpenAI the difference between an error and a result whose text begins with `Error: `.
"""

from __future__ import annotations

from ._attachments import UnsupportedContent
from ._common import ERROR_PREFIX, Wire
from .anthropic import AnthropicPrompt, anthropic_tools, from_anthropic, to_anthropic
from .chat import from_openai_chat, openai_chat_tools, to_openai_chat
from .responses import from_openai_responses, openai_responses_tools, to_openai_responses

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
