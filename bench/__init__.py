"""Benchmarks: the engine against a serial baseline built from the same parts (issue 8)."""
