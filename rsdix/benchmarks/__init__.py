"""Benchmarks: each module has ``run(quick: bool) -> list[dict]``."""
