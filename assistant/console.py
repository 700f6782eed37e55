"""The one rich Console everything prints through."""

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
