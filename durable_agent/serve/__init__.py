"""`durable-agent serve`: the HTTP front door to agent runs, with Server-Sent Events."""

from .app import TOKEN_VARIABLE, create_app, listen, serve
from .hub import Hub, HubClosed, Subscription

__all__ = ["TOKEN_VARIABLE", "Hub", "HubClosed", "Subscription", "create_app", "listen", "serve"]
