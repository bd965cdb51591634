"""The cost of durability, measured: `python -m bench` (or `make bench`)."""
