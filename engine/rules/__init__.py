"""Torch-free turn rules: pure functions and data, importing nothing of the project."""
