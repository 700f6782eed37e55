"""A local, hands-free Moshi voice assistant for Apple Silicon Macs, running on MLX."""

__version__ = "0.1.0"
