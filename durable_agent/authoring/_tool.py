"""Tools: one typed function and its docstring; the JSON schema is derived, never written twice."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum, StrEnum
from typing import Any, Literal, cast, get_type_hints, overload

import pydantic
from temporalio.common import RetryPolicy

from ..wire import Attachment, File, Image, ToolSpec, render_content
from ._context import ToolContext, current_context

HEARTBEAT_TIMEOUT = timedelta(seconds=4)
"""How long a running call (tool, model or hook activity) may go without a heartbeat before
Temporal presumes its worker dead and retries it elsewhere. The call beats every fifth of it.

Without one, a SIGKILLed worker leaves the run still for the call's whole start-to-close timeout
(5 min for a tool, 2 min for a model call). The bar: another worker finishes the run within 15 s
of the kill. Recovery = detection (at most this timeout after the kill: the SDK sends a
heartbeat at most every ~80% of it) + the retry policy's 1 s initial interval + the retried call
+ a fresh worker's start. Measured by tests/test_crash_recovery.py (dev server 1.32, 2 shared
cores, load 3-5), a 6 s call killed 1.5 s in: with 4 s the retry starts 4.4 s after the kill
and the run ends 10.5-11.7 s after it (tool) and 10.5-13 s (model, whose fresh worker loads the
OpenAI SDK); with 5 s, 11.6-14.6 s, too close to the bar under load. Shorter would presume dead
a worker whose event loop merely stalls for 80% of it (an async tool that blocks it).
"""


class _Inherit(Enum):
    AGENT = "the agent's"


FROM_AGENT = _Inherit.AGENT
"""A tool's or hook's heartbeat timeout when it sets none: its agent's `heartbeat_timeout`."""

HeartbeatTimeout = timedelta | None | Literal[_Inherit.AGENT]
"""A heartbeat timeout setting: a duration, `None` for no heartbeats, or `FROM_AGENT`."""


class ToolKind(StrEnum):
    """How a tool call is answered; the workflow's loop branches on this."""

    INVOCABLE = "invocable"
    """An activity runs the function and its return value is the result."""
    EXTERNAL = "external"
    """No body: the call waits for a `tool_result` signal."""
    LONG_RUNNING = "long_running"
    """An activity starts the work, then the call waits for a `tool_result` signal."""


def json_object(arguments: str) -> dict[str, Any]:
    """The model's arguments as a JSON object; `ToolArgumentsError` says why they are not."""
    try:
        raw = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        raise ToolArgumentsError(f"arguments are not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise ToolArgumentsError("arguments must be a JSON object")
    return raw


ApprovalPolicy = bool | Callable[..., bool]
"""`requires_approval`: always, never, or a deterministic function of the call's arguments."""


class ToolArgumentsError(ValueError):
    """The model's arguments are not valid JSON or do not match the schema."""


@dataclass(eq=False)
class Tool:
    """A tool an agent can call. Build it with `@tool`, `@long_running_tool` or `@external_tool`."""

    name: str
    description: str
    args_model: type[pydantic.BaseModel]
    fn: Callable[..., Any] | None
    kind: ToolKind = ToolKind.INVOCABLE
    requires_approval: ApprovalPolicy = False
    """True, or a policy: a function of the call's arguments (as keywords, like the tool's),
    called in the workflow, so it must be deterministic."""
    timeout: timedelta = timedelta(minutes=5)
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(maximum_attempts=3))
    deadline: timedelta | None = None
    """How long a waiting call (result signal or approval) may wait; `None` waits for ever."""
    fail_on_deadline: bool = False
    """Fail the run when the deadline passes instead of telling the model the call timed out."""
    context_param: str | None = None
    local: bool = False
    """Run as a local activity: much faster, but see README "fast mode" for the trade-offs."""
    heartbeat_timeout: HeartbeatTimeout = FROM_AGENT
    """Presume the call's worker dead after this long without a heartbeat; `None`: never."""

    @property
    def activity_name(self) -> str:
        """The activity type shown in the Temporal UI: a wire contract, keep it stable."""
        return f"tool.{self.name}"

    @property
    def activity_retry(self) -> RetryPolicy:
        """The retry policy the call's activity is scheduled with: `retry` with unlimited
        attempts, because the activity itself counts the tool's own exceptions against
        `retry.maximum_attempts` and attempts lost with a dead worker count nothing
        (`activities/tool_failures.py`). A local activity keeps `retry`: a dead worker's local
        activity starts again from its first attempt anyway."""
        return self.retry if self.local else dataclasses.replace(self.retry, maximum_attempts=0)

    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=self.name, description=self.description, parameters=_schema(self.args_model)
        )

    def needs_approval(self, arguments: str) -> bool:
        """Whether this call waits for a person's decision. Arguments that do not validate
        need none (the call is answered with their error); a policy that raises asks for one
        (better to ask than to act)."""
        policy = self.requires_approval
        if not callable(policy):
            return bool(policy)
        try:
            kwargs = self.parse_arguments(arguments)
        except ToolArgumentsError:
            return False
        try:
            return bool(policy(**kwargs))
        except Exception:
            return True

    def parse_arguments(self, arguments: str) -> dict[str, Any]:
        """Validate the model's JSON arguments; `ToolArgumentsError` says why they are bad."""
        raw = json_object(arguments)
        try:
            parsed = self.args_model.model_validate(raw)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                for err in exc.errors(include_url=False)
            )
            raise ToolArgumentsError(f"invalid arguments: {problems}") from None
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}

    async def invoke(self, arguments: str, context: ToolContext) -> str:
        """Run the function with validated arguments and render its result as text."""
        text, _ = await self.invoke_with_attachments(arguments, context)
        return text

    async def invoke_with_attachments(
        self, arguments: str, context: ToolContext
    ) -> tuple[str, list[Attachment]]:
        """Run the function; its result as text plus the images and files it returned."""
        if self.fn is None:
            raise RuntimeError(f"tool {self.name!r} has no body: its result arrives by signal")
        kwargs = self.parse_arguments(arguments)
        if self.context_param:
            kwargs[self.context_param] = context
        token = current_context.set(context)
        try:
            if inspect.iscoroutinefunction(self.fn):
                result = await self.fn(**kwargs)
            else:
                # Sync tools run in a thread (the context variable goes with them) so that
                # a blocking tool does not stall the worker's event loop.
                result = await asyncio.to_thread(self.fn, **kwargs)
        finally:
            current_context.reset(token)
        return render_result(result)


def render_result(result: Any) -> tuple[str, list[Attachment]]:
    """A tool's return value as text and attachments: `Image(...)` / `File(...)`, alone or in a
    list beside text (`["The chart:", Image(...)]`), become attachments; the rest is text."""
    items = result if isinstance(result, list | tuple) else [result]
    attachments = [r for r in items if isinstance(r, Image | File)]
    if not attachments:
        return render_content(result), []
    text = "\n".join(render_content(r) for r in items if not isinstance(r, Image | File))
    return text, attachments


def _schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")


def _split_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Google-style docstring -> (summary, {param: description})."""
    summary_lines: list[str] = []
    params: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            match = _ARG_LINE.match(line)
            if match:
                params[match.group(1)] = match.group(2).strip()
            elif stripped.endswith(":") and not line.startswith(" "):
                in_args = False
            continue
        summary_lines.append(stripped)
    return "\n".join(summary_lines).strip(), params


def _build_tool(fn: Callable[..., Any], kind: ToolKind, name: str | None, **options: Any) -> Tool:
    tool_name = name or fn.__name__
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool_name):
        raise ValueError(f"tool name {tool_name!r} must match [A-Za-z0-9_-]{{1,64}}")
    doc = inspect.getdoc(fn) or ""
    description, param_docs = _split_docstring(doc)
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(
                f"tool {tool_name!r}: *args and **kwargs cannot be described to a model"
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (
            annotation,
            pydantic.Field(default, description=param_docs.get(param.name)),
        )
    args_model = pydantic.create_model(
        f"{tool_name}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )
    return Tool(
        name=tool_name,
        description=description or options.pop("description", "") or tool_name,
        args_model=cast(type[pydantic.BaseModel], args_model),
        fn=None if kind is ToolKind.EXTERNAL else fn,
        kind=kind,
        context_param=context_param,
        **{k: v for k, v in options.items() if k != "description"},
    )


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    requires_approval: ApprovalPolicy = False,
    timeout: timedelta = ...,
    retry: RetryPolicy | None = None,
    deadline: timedelta | None = None,
    fail_on_deadline: bool = False,
    local: bool = False,
    heartbeat_timeout: HeartbeatTimeout = ...,
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    requires_approval: ApprovalPolicy = False,
    timeout: timedelta = timedelta(minutes=5),
    retry: RetryPolicy | None = None,
    deadline: timedelta | None = None,
    fail_on_deadline: bool = False,
    local: bool = False,
    heartbeat_timeout: HeartbeatTimeout = FROM_AGENT,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a sync or async function a tool, run as an activity per call.

    Args:
        name: Tool name shown to the model; defaults to the function name.
        requires_approval: Wait for an `approval` signal before running: True, or a policy
            of the arguments (`lambda amount: amount > 100`), deterministic.
        timeout: Start-to-close timeout of one attempt.
        retry: Temporal retry policy; after the last attempt the error goes to the model.
        deadline: How long to wait for an approval before the call times out.
        fail_on_deadline: Fail the run, rather than tell the model, when the deadline passes.
        local: Run as a local activity (fast mode): for quick, idempotent tools only.
        heartbeat_timeout: Retry the call elsewhere when its worker has not heartbeaten for
            this long (it heartbeats while it runs); `None` turns heartbeats off. Default: the
            agent's `heartbeat_timeout` (`HEARTBEAT_TIMEOUT`, 4 s).
    """

    def wrap(f: Callable[..., Any]) -> Tool:
        return _build_tool(
            f,
            ToolKind.INVOCABLE,
            name,
            requires_approval=requires_approval,
            timeout=timeout,
            retry=retry or RetryPolicy(maximum_attempts=3),
            deadline=deadline,
            fail_on_deadline=fail_on_deadline,
            local=local,
            heartbeat_timeout=heartbeat_timeout,
        )

    return wrap(fn) if fn is not None else wrap


@overload
def long_running_tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def long_running_tool(
    *,
    name: str | None = None,
    deadline: timedelta | None = None,
    fail_on_deadline: bool = False,
    requires_approval: ApprovalPolicy = False,
    timeout: timedelta = ...,
    retry: RetryPolicy | None = None,
    heartbeat_timeout: HeartbeatTimeout = ...,
) -> Callable[[Callable[..., Any]], Tool]: ...
def long_running_tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    deadline: timedelta | None = None,
    fail_on_deadline: bool = False,
    requires_approval: ApprovalPolicy = False,
    timeout: timedelta = timedelta(minutes=5),
    retry: RetryPolicy | None = None,
    heartbeat_timeout: HeartbeatTimeout = FROM_AGENT,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """A tool whose function only starts the work (for example enqueues a job keyed by the
    tool_call_id); the call then waits, durably, for its `tool_result` signal. Use it bare
    (`@long_running_tool`) or with arguments (`@long_running_tool(deadline=...)`)."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return _build_tool(
            f,
            ToolKind.LONG_RUNNING,
            name,
            deadline=deadline,
            fail_on_deadline=fail_on_deadline,
            requires_approval=requires_approval,
            timeout=timeout,
            retry=retry or RetryPolicy(maximum_attempts=3),
            heartbeat_timeout=heartbeat_timeout,
        )

    return wrap(fn) if fn is not None else wrap


@overload
def external_tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def external_tool(
    *,
    name: str | None = None,
    deadline: timedelta | None = None,
    fail_on_deadline: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...
def external_tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    deadline: timedelta | None = None,
    fail_on_deadline: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """A tool declared by its signature only: its body never runs, its result is signalled in.
    Use it bare (`@external_tool`) or with arguments (`@external_tool(deadline=...)`)."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return _build_tool(
            f, ToolKind.EXTERNAL, name, deadline=deadline, fail_on_deadline=fail_on_deadline
        )

    return wrap(fn) if fn is not None else wrap
