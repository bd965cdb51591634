"""Tool activities: one activity type per tool (`tool.<name>`), so the UI shows which ran."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from temporalio import activity

from durable_agent.authoring import ToolContext
from durable_agent.authoring._guardrails import Guardrail
from durable_agent.authoring._tool import Tool, ToolArgumentsError, ToolKind
from durable_agent.wire import ToolInvocation, ToolOutcome

from .attachments import offload
from .guardrails import check_tool_call, require_guardrails
from .heartbeat import heartbeating
from .tool_failures import OwnFailures, out_of_time, prior_failures, tool_failed
from .transcripts import TranscriptCache


def tool_activity(
    tool: Tool, results: TranscriptCache, guardrails: Mapping[str, Guardrail] | None = None
) -> Callable[[ToolInvocation], Any]:
    """An activity that runs `tool`, once the guardrails the invocation names (of
    `guardrails`, the worker's) let the call through. Its exceptions are retried by Temporal
    until the tool's own attempts are spent, then go back to the model (`tool_failures.py`: a
    dead worker's attempts do not count); bad arguments go back at once, since a retry would
    fail the same way.

    It heartbeats while the tool runs. A cancelled call raises `asyncio.CancelledError` in an
    async tool; a sync tool runs in a thread that cannot be interrupted, so it runs to its end
    and its result is discarded.
    """

    async def run_tool(invocation: ToolInvocation) -> ToolOutcome:
        info = activity.info()
        context = ToolContext(
            workflow_id=info.workflow_id or "",
            run_id=info.workflow_run_id or "",
            tool_call_id=invocation.tool_call_id,
            tool_name=tool.name,
            agent=invocation.agent,
            attempt=info.attempt,
        )
        failures = prior_failures(info)
        if (ended := out_of_time(tool, invocation.tool_call_id, info, context.events)) is not None:
            return ended
        require_guardrails(guardrails or {}, invocation)  # else Temporal retries elsewhere
        try:
            async with heartbeating(OwnFailures(failures=failures)):
                refused = await check_tool_call(guardrails or {}, invocation)  # never raises
                if refused is not None:  # the workflow words the refusal the model sees
                    return ToolOutcome(content="", is_error=True, refused=refused)
                content, attachments = await tool.invoke_with_attachments(
                    invocation.arguments, context
                )
                if attachments:  # large bytes to payload storage, before they enter history
                    attachments = await offload(activity.client().data_converter, attachments)
        except ToolArgumentsError as exc:
            return ToolOutcome(content=str(exc), is_error=True, events=context.events)
        except Exception as exc:
            return tool_failed(tool, invocation.tool_call_id, exc, failures + 1, context.events)
        # Only an invocable tool's result is the content the model reads next.
        ref = results.keep_result(content) if tool.kind is ToolKind.INVOCABLE else None
        return ToolOutcome(content=content, events=context.events, ref=ref, attachments=attachments)

    return activity.defn(name=tool.activity_name)(run_tool)


def tool_activities(
    tools: Iterable[Tool],
    results: TranscriptCache,
    guardrails: Mapping[str, Guardrail] | None = None,
) -> list[Callable[..., Any]]:
    """One activity per distinct tool; two different tools with one name is a setup error.
    Results are kept in `results`, the model activity's cache, for the next model call;
    `guardrails` are the worker's, which a call's invocation names to be checked first."""
    by_name: dict[str, Tool] = {}
    for tool in tools:
        other = by_name.setdefault(tool.name, tool)
        if other is not tool:
            raise ValueError(f"two different tools are named {tool.name!r}")
    return [tool_activity(t, results, guardrails) for t in by_name.values() if t.fn is not None]
