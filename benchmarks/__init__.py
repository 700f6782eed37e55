"""Benchmarks: each prints figures side by side and asserts nothing. Run one from the checkout
root as a module, e.g. `python -m benchmarks.bench_metrics`; `tests/test_benchmarks.py` runs
each briefly so that none goes stale."""
