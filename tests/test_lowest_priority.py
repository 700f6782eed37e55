"""scripts/lowest_priority.py: what scripts/test.sh runs lint and the parallel tests under."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "scripts" / "lowest_priority.py"
AUTOGROUP = Path("/proc/self/autogroup")

# What the command finds itself running as, in JSON.
REPORT = """
import json, os, sys
from pathlib import Path
group = Path("/proc/self/autogroup")
print(json.dumps({
    "pid": os.getpid(), "sid": os.getsid(0), "pgid": os.getpgid(0), "nice": os.nice(0),
    "idle_class": sys.platform == "linux" and os.sched_getscheduler(0) == os.SCHED_IDLE,
    "autogroup": group.read_text().split() if group.exists() else None,
}))
"""


def launch(*command: str, group_leader: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *command],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=os.setpgrp if group_leader else None,
    )


def autogroup() -> list[str] | None:
    return AUTOGROUP.read_text().split() if AUTOGROUP.exists() else None


def test_the_command_runs_lowest_in_a_session_and_group_of_its_own() -> None:
    mine = autogroup()
    done = launch(sys.executable, "-c", REPORT)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["sid"] == seen["pgid"] == seen["pid"] != os.getsid(0)  # same PID: exec'd
    assert seen["nice"] == 19
    assert seen["idle_class"] is (sys.platform == "linux")
    if mine is not None:  # Linux with autogroups: a new group, niced; ours left as it was
        assert seen["autogroup"][0] != mine[0] and seen["autogroup"][-1] == "19"
        assert autogroup() == mine


def test_a_group_leader_stays_in_our_session_and_leaves_its_group_alone() -> None:
    """Started as a process group leader it can't have a session of its own: niced alone, its
    session's autogroup (here ours, as a user's terminal's would be) is not niced."""
    mine = autogroup()
    done = launch(sys.executable, "-c", REPORT, group_leader=True)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["sid"] == os.getsid(0) and seen["nice"] == 19
    assert seen["autogroup"] == mine and autogroup() == mine


def test_exit_status_and_a_missing_command() -> None:
    assert launch(sys.executable, "-c", "raise SystemExit(3)").returncode == 3
    missing = launch("no-such-command-here")
    assert missing.returncode == 127
    assert missing.stderr.strip() == (
        "lowest_priority.py: cannot run no-such-command-here: No such file or directory"
    )
    assert launch().returncode == 2


def test_ctrl_c_to_its_group_reaches_a_command_started_with_it_ignored() -> None:
    """As scripts/test.sh starts it: a background job, SIGINT ignored; its exit trap sends
    SIGINT to the whole group."""
    waiting = "import time; print('ready', flush=True); time.sleep(60)"
    process = subprocess.Popen(
        [sys.executable, str(LAUNCHER), sys.executable, "-c", waiting],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # (Python ends itself by the signal after a KeyboardInterrupt, as a shell would expect)
    assert process.returncode == -signal.SIGINT and "KeyboardInterrupt" in err


def test_scripts_test_sh_runs_lint_and_the_parallel_phase_through_it() -> None:
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    assert "lowest=(.venv/bin/python scripts/lowest_priority.py)" in test_sh
    assert '"${lowest[@]}" bash -c "$(declare -f lint); lint"' in test_sh
    assert '"${lowest[@]}" .venv/bin/python -m pytest -m "not realtime"' in test_sh
