"""Synthetic checkpoints: random weights in exactly the published file layouts.

Real weights cannot be downloaded everywhere (CI, offline machines), so tests, the demo and
the benchmarks run on folders made here. Import the submodules directly; this package
imports nothing heavy on its own.
"""
