"""What our HTTP servers (`serve`, `codec-server`, `mcp-serve`) share: their listening socket."""

from __future__ import annotations

import socket


def listen(host: str, port: int, name: str = "server") -> socket.socket:
    """The server's socket, listening now: a taken port fails here with a plain OSError naming
    `name`, rather than inside uvicorn (which exits the process), and clients that connect
    before the server is up wait in the backlog. Its protocol is named so that asyncio sets
    TCP_NODELAY on the connections it accepts (it checks `sock.proto`): without it, every
    response after a kept-alive connection's first waited 40 ms for a delayed ACK (measured)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen()
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"{name} cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock
