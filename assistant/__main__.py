"""`python -m assistant` and the `assistant` console script."""

from __future__ import annotations

import sys

from . import interrupts


def entry() -> None:
    interrupts.install()  # before the command line's modules import (a second or so)
    try:
        from .cli import main
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM while they import: still one line
        sys.stderr.write(interrupts.message() + "\n")
        interrupts.finish(interrupts.exit_code())
    main()


if __name__ == "__main__":
    entry()
