"""Run a command at the lowest CPU priority this system offers, in a session of its own:

    python scripts/lowest_priority.py COMMAND [ARG...]

scripts/test.sh runs lint and the parallel tests this way, beside the real-time tests, so
that a real-time test finds the CPU as good as idle whenever it needs it.

nice 19 and, on Linux, the idle scheduling class are not enough there. Linux groups processes
by session (autogroup, on by default in most distributions and CI images) and shares the CPU
fairly between groups; nice and the idle class count only within one. The programs the tests
start (the assistant, PulseAudio) each run in a session of their own, so a real-time test's
program competed with the parallel tests' as an equal: a probe waking every 10 ms in a session
of its own, beside the parallel tests for 150 s, woke 4 times 20-42 ms late.

So, from the strongest to the weakest, where the system allows:
- a control group of its own marked idle (cgroup v1's `cpu.idle`, needs root): the command and
  everything it starts, in whatever session, get the CPU only when nothing outside wants it.
  The group is removed when the command ends. The probe's 99th percentile: 0.3 ms late
  instead of 3-4 ms (a rare stall of 20-30 ms is left, which no CPU priority removes).
- a session of its own whose autogroup is niced too (any user): covers what stays in that
  session, not the programs it starts in sessions of their own.
- nice 19 and the idle class, everywhere (macOS: nice alone, which has no autogroups).

The command's process group is its session: signal it as a whole (`kill -INT -- -PID`), as a
terminal would. Ctrl-C is given back to it, as a background job (`&`) starts with it ignored.
LOWEST_PRIORITY_CGROUP=off leaves control groups alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

LOWEST_NICE = 19
CPU_CGROUPS = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller, where mounted
NAME = "assistant-lowest-priority"


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


def idle_cgroup() -> Path | None:
    """A new cpu control group marked idle, this process in it; None where that can't be."""
    if os.environ.get("LOWEST_PRIORITY_CGROUP") == "off" or not (CPU_CGROUPS / "cpu.idle").exists():
        return None
    here = next((path for controllers, path in _own_cgroups() if "cpu" in controllers), None)
    if here is None:
        return None
    group = CPU_CGROUPS / here.lstrip("/") / f"{NAME}-{os.getpid()}"
    try:
        group.mkdir()
    except OSError:  # not root, a read-only mount
        return None
    try:
        (group / "cpu.idle").write_text("1")
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        with contextlib.suppress(OSError):
            group.rmdir()
        return None
    return group


def _own_cgroups() -> list[tuple[list[str], str]]:
    """(controllers, path) of each hierarchy this process is in (v1: "4:cpu,cpuacct:/a")."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    return [(c.split(","), path) for _, c, path in (line.split(":", 2) for line in lines)]


def remove(group: Path) -> None:
    """The group, once empty: what the command left running is moved out first."""
    parent = group.parent / "cgroup.procs"
    with contextlib.suppress(OSError):
        parent.write_text(str(os.getpid()))  # this process first
    for _ in range(50):
        with contextlib.suppress(OSError):
            group.rmdir()
            return
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    parent.write_text(pid)
        time.sleep(0.1)
    print(f"lowest_priority.py: could not remove {group}", file=sys.stderr)


def cannot_run(command: str, error: OSError) -> int:
    print(f"lowest_priority.py: cannot run {command}: {error.strerror}", file=sys.stderr)
    return 127  # as a shell's "command not found"


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: lowest_priority.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    lower_priority()
    group = idle_cgroup()
    if group is None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            os.execvp(argv[0], argv)
        except OSError as e:
            return cannot_run(argv[0], e)
    # Stay to remove the group: signals to the process group are the command's to act on
    # (a handler here, unlike an ignored signal, is not inherited by the command).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    try:
        try:
            command = subprocess.Popen(argv)
        except OSError as e:
            return cannot_run(argv[0], e)
        code = command.wait()
    finally:
        remove(group)
    if code < 0:  # ended by a signal: end the same way, as a shell would expect
        with contextlib.suppress(OSError, ValueError):  # (SIGKILL has no handler to reset)
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
