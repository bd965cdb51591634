"""Fault storms (`make faults`, `python -m faults [--quick]`): real worker processes, a real
dev server on a state file and the real OpenAI SDK against a misbehaving local server, under
kills, server restarts, provider faults and signal storms; figures in docs/reliability.md."""
