"""The assistant's version: the one pyproject.toml gives, as installed (one place to change)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@functools.cache
def assistant_version() -> str:
    """As installed; from the checkout's pyproject.toml when the package never was (run from
    a checkout with PYTHONPATH). Looked up on first use: the lookup costs start-up time."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("assistant")
    except PackageNotFoundError:
        pass
    try:
        found = re.search(r'^version = "([^"]+)"', _PYPROJECT.read_text(), re.MULTILINE)
    except OSError:
        found = None
    return found[1] if found else "0+unknown"
