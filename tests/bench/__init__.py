"""Benchmarks: run by `uv run python -m tests.bench`, never collected by pytest (no timing asserts)."""
