"""durable-agent: LLM agents on Temporal that never lose their place."""

from temporalio import workflow as _workflow

with _workflow.unsafe.imports_passed_through():
    # Temporal's sandbox runs this file when it loads our workflow module (a child package).
    # The agents the worker registered, and the classes they are made of, must be the worker's
    # own modules there, not fresh copies: pass them through.
    import durable_agent._registry  # noqa: F401 - absolute: a relative import is not passed

    from ._agent import Agent, Handoff, ScriptedModel, SubAgent, person
    from ._hooks import Hook, hook
    from ._mcp import MCPServer
    from ._tool import (
        Tool,
        ToolContext,
        ToolKind,
        external_tool,
        long_running_tool,
        tool,
        tool_context,
    )
    from .wire import (
        AgentRunInput,
        AgentRunResult,
        ApprovalSignal,
        AssistantMessage,
        Budget,
        HistoryPage,
        HistoryQuery,
        HookContext,
        HookResult,
        Item,
        LiveEvent,
        Message,
        ModelDelta,
        ModelRequest,
        ModelResponse,
        ModelSettings,
        PendingCall,
        RunState,
        Snapshot,
        StatusEvent,
        StatusInfo,
        SubmitResult,
        SystemMessage,
        ToolCall,
        ToolMessage,
        ToolResultSignal,
        ToolSpec,
        Usage,
        UserMessage,
        UserMessageSignal,
        prompt_messages,
    )

__all__ = [
    "Agent",
    "AgentRunInput",
    "AgentRunResult",
    "ApprovalSignal",
    "AssistantMessage",
    "Budget",
    "Handoff",
    "HistoryPage",
    "HistoryQuery",
    "Hook",
    "HookContext",
    "HookResult",
    "Item",
    "LiveEvent",
    "MCPServer",
    "Message",
    "ModelDelta",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "PendingCall",
    "RunState",
    "ScriptedModel",
    "Snapshot",
    "StatusEvent",
    "StatusInfo",
    "SubAgent",
    "SubmitResult",
    "SystemMessage",
    "Tool",
    "ToolCall",
    "ToolContext",
    "ToolKind",
    "ToolMessage",
    "ToolResultSignal",
    "ToolSpec",
    "Usage",
    "UserMessage",
    "UserMessageSignal",
    "external_tool",
    "hook",
    "long_running_tool",
    "person",
    "prompt_messages",
    "tool",
    "tool_context",
]
