"""A customer-support agent: parallel lookups and a question to a policy sub-agent, then a
refund that waits on a back-office queue.

Offline it runs a deterministic scripted model; with OPENAI_API_KEY or ANTHROPIC_API_KEY set it
uses the real provider (override the model with DURABLE_AGENT_MODEL, e.g. `openai-chat:gpt-4.1`).
Serve it with `durable-agent worker --agents examples.support:agents`.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta

from durable_agent import (
    Agent,
    AssistantMessage,
    ModelRequest,
    ScriptedModel,
    ToolCall,
    ToolContext,
    ToolMessage,
    long_running_tool,
    tool,
)

from .refund_queue import RefundJob, enqueue

ORDERS = {
    "A-1001": {"item": "espresso machine", "sku": "ESP-9", "total": 249.0, "status": "delivered"},
    "A-1002": {"item": "grinder", "sku": "GRD-2", "total": 129.0, "status": "in transit"},
}


@tool
def lookup_order(order_id: str) -> dict[str, object]:
    """Look up an order by its id.

    Args:
        order_id: The order id, like A-1001.
    """
    order = ORDERS.get(order_id)
    if order is None:
        raise ValueError(f"no order {order_id}")
    return {"order_id": order_id, **order}


@tool
def check_inventory(sku: str) -> dict[str, object]:
    """How many replacement units are in stock.

    Args:
        sku: The product SKU.
    """
    return {"sku": sku, "in_stock": 3 if sku == "ESP-9" else 0}


@long_running_tool(deadline=timedelta(days=7))
def request_refund(order_id: str, amount: float, ctx: ToolContext) -> str:
    """Ask the back office for a refund. The decision can take days.

    Args:
        order_id: The order to refund.
        amount: The amount to refund, in dollars.
    """
    enqueue(RefundJob(ctx.workflow_id, ctx.tool_call_id, order_id, amount))
    ctx.progress("refund queued", order_id=order_id)
    return "queued"


def _offline(request: ModelRequest) -> AssistantMessage:
    """Plays the model: a fixed plan that reads the tool results it got."""
    results = {m.name: m for m in request.messages if isinstance(m, ToolMessage)}
    turn = sum(1 for m in request.messages if m.role == "assistant")
    prompt = next((m.content for m in request.messages if m.role == "user"), "")
    order_id = (re.findall(r"[A-Z]-\d{4}", prompt or "") or ["A-1001"])[0]
    if "lookup_order" not in results:
        return AssistantMessage(
            content="Let me look at your order and our stock.",
            tool_calls=[
                ToolCall(
                    id=f"call_{turn}_0",
                    name="lookup_order",
                    arguments=json.dumps({"order_id": order_id}),
                ),
                ToolCall(id=f"call_{turn}_1", name="check_inventory", arguments='{"sku": "ESP-9"}'),
                ToolCall(
                    id=f"call_{turn}_2",
                    name="policy",
                    arguments=json.dumps({"input": f"Order {order_id}: {prompt} Refundable?"}),
                ),
            ],
        )
    if "request_refund" not in results:
        order = json.loads(results["lookup_order"].content)
        args = {"order_id": order_id, "amount": order["total"]}
        return AssistantMessage(
            content="I am asking the back office for a refund.",
            tool_calls=[
                ToolCall(id=f"call_{turn}_0", name="request_refund", arguments=json.dumps(args))
            ],
        )
    refund = results["request_refund"]
    if refund.is_error:
        return AssistantMessage(content=f"Sorry, the refund could not be made: {refund.content}")
    decision = json.loads(refund.content)
    return AssistantMessage(
        content=(
            f"Your refund of ${decision['amount']:.2f} for order {decision['order_id']} is "
            f"{decision['status']} (reference {decision['reference']})."
        )
    )


def _policy_offline(request: ModelRequest) -> str:
    return "Damaged on arrival and reported within 30 days: a full refund of the order total."


def _model(offline: ScriptedModel) -> str | ScriptedModel:
    if os.environ.get("DURABLE_AGENT_MODEL"):
        return os.environ["DURABLE_AGENT_MODEL"]
    if os.environ.get("OPENAI_API_KEY"):
        return "openai:gpt-4.1-mini"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic:claude-sonnet-4-5"
    return offline


policy = Agent(
    name="policy",
    model=_model(ScriptedModel("policy-offline", _policy_offline)),
    instructions=(
        "You know the refund policy of a coffee-gear shop: items damaged on arrival and reported "
        "within 30 days get a full refund of the order total; other returns get store credit. "
        "Say in one sentence whether the case you are given is refundable, and how much."
    ),
)

support = Agent(
    name="support",
    model=_model(ScriptedModel("support-offline", _offline, chunk_delay=0.01)),
    instructions=(
        "You are a customer-support agent for a coffee-gear shop. Look orders up before "
        "answering, and ask the policy agent whether the case is refundable. For a damaged "
        "item, request a refund of the order total and tell the customer the back office's "
        "decision."
    ),
    tools=[
        lookup_order,
        check_inventory,
        request_refund,
        policy.as_tool(description="Ask the refund-policy expert whether a case is refundable."),
    ],
)

agents = [support]
