"""Helpers the tests share: builders, fakes and harnesses (no fixtures: see conftest.py)."""
