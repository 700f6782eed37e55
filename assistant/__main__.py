"""`python -m assistant` and the `assistant` console script."""

from __future__ import annotations

import sys


def entry() -> None:
    # Ctrl-C while the command line's modules are still importing is still one line.
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    main()


if __name__ == "__main__":
    entry()
