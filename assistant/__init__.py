"""A local, hands-free Moshi voice assistant for Apple Silicon Macs, running on MLX."""

import logging

__version__ = "0.1.0"

# Nothing is logged to the screen unless the CLI sets up a log file (see logs.py).
logging.getLogger(__name__).addHandler(logging.NullHandler())
