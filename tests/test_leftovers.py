"""The end-of-session check (tests/support/leftovers.py) finds what the tests left running."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from tests.support import leftovers


def test_a_detached_process_left_running_is_found_by_its_mark_and_ended() -> None:
    # What a daemonizing server does: a grandchild in a session of its own, re-parented.
    spawn = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
        " start_new_session=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(p.pid)\n"
    )
    out = subprocess.run([sys.executable, "-c", spawn], capture_output=True, text=True, timeout=30)
    pid = int(out.stdout)
    try:
        mark = os.environ[leftovers.MARK]  # set for the whole session by conftest.py
        assert pid in {p.pid for p in leftovers.marked_processes(mark)}
        assert pid not in {p.pid for p in leftovers.marked_processes(mark + "-another")}
        leftovers.end([psutil.Process(pid)])
        assert pid not in {p.pid for p in leftovers.marked_processes(mark)}
    finally:
        if psutil.pid_exists(pid):
            psutil.Process(pid).kill()
