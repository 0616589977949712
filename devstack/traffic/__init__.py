"""Synthetic traffic: realistic events (and a share of invalid ones) for demos, tests and benchmarks."""
