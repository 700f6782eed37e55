"""Run a command at the lowest CPU priority this system offers, in a session of its own:

    python scripts/lowest_priority.py COMMAND [ARG...]

scripts/test.sh runs lint and the parallel tests this way, beside the real-time tests, so
that a real-time test finds the CPU as good as idle whenever it needs it.

nice 19 and, on Linux, the idle scheduling class are not enough there. Linux groups processes
by session (autogroup, on by default in most distributions and CI images) and shares the CPU
fairly between groups; nice and the idle class count only within one. The programs the
real-time tests start (the assistant, PulseAudio) each run in a session of their own, so they
would compete with the whole parallel phase as equals: measured beside it with a probe that
wakes every 10 ms, 4 wake-ups in 150 s came 20-42 ms late. So the command gets a session of
its own, whose group is niced too: then none came more than 10 ms late.

The command's process group is its session: signal it as a whole (`kill -INT -- -PID`), as a
terminal would. Ctrl-C is given back to it, as a background job (`&`) starts with it ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

LOWEST_NICE = 19


def lower_priority() -> None:
    """This process, and what it starts, at the lowest priority (what the system offers)."""
    try:
        os.setsid()  # a session, and so on Linux an autogroup, of its own
    except OSError:
        # Already a process group leader: still in the caller's session, whose autogroup (the
        # user's terminal, say) must not be niced along with this command.
        pass
    else:
        # (no such file without autogroups: macOS, some kernels)
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
            group.write(str(LOWEST_NICE))
    if sys.platform == "linux":  # the idle class: the CPU only when nothing else wants it
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    os.nice(LOWEST_NICE - os.nice(0))


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: lowest_priority.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    lower_priority()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print(f"lowest_priority.py: cannot run {argv[0]}: {e.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
