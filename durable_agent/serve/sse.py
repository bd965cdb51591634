"""Server-Sent Events: how long a quiet stream may stay silent."""

from __future__ import annotations

__all__ = ["KEEPALIVE_SECONDS"]

KEEPALIVE_SECONDS = 15.0
"""An SSE comment this often while a run is quiet: proxies close idle connections (nginx's
proxy_read_timeout and AWS load balancers' idle timeout are 60 s by default)."""
