"""Load benchmarks: each prints its figures; run from the repository root with `python -m bench.<name>`."""
