"""A local, hands-free Moshi voice assistant for Apple Silicon Macs, running on MLX."""

from __future__ import annotations

import logging

# Nothing is logged to the screen unless the CLI sets up a log file (see logs.py).
logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> str:
    """`__version__` (version.py), looked up on first use."""
    if name == "__version__":
        from .version import assistant_version

        return assistant_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
