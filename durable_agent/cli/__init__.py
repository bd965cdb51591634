"""The `durable-agent` command (`main` is the console script). Each group of verbs registers
its own: `runs` (start and read runs), `answers` (answer and steer them), `servers` (the
processes: dev server, worker, codec server, HTTP and MCP front doors); `errors` turns any
failure into one line."""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
