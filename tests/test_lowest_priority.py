"""scripts/lowest_priority.py: what scripts/test.sh runs lint and the parallel tests under."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "scripts" / "lowest_priority.py"
AUTOGROUP = Path("/proc/self/autogroup")

# What the command finds itself running as, in JSON.
REPORT = """
import json, os, sys
from pathlib import Path

import pytest
group = Path("/proc/self/autogroup")
cpu = [p for _, c, p in (x.split(":", 2) for x in Path("/proc/self/cgroup").read_text().split())
       if "cpu" in c.split(",")] if sys.platform == "linux" else []
idle = Path("/sys/fs/cgroup/cpu", cpu[0].lstrip("/"), "cpu.idle") if cpu else None
print(json.dumps({
    "pid": os.getpid(), "sid": os.getsid(0), "pgid": os.getpgid(0), "nice": os.nice(0),
    "idle_class": sys.platform == "linux" and os.sched_getscheduler(0) == os.SCHED_IDLE,
    "autogroup": group.read_text().split() if group.exists() else None,
    "cgroup": cpu[0] if cpu else None,
    "cgroup_idle": idle.read_text().strip() if idle and idle.exists() else None,
}))
"""
CGROUPS = Path("/sys/fs/cgroup/cpu")
# Where this machine lets the launcher make an idle cpu control group (cgroup v1, root).
can_make_cgroups = (CGROUPS / "cpu.idle").exists() and os.access(CGROUPS, os.W_OK)


def launch(
    *command: str, group_leader: bool = False, cgroup: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *command],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=os.setpgrp if group_leader else None,
        env=launcher_env(cgroup),
    )


def launcher_env(cgroup: bool) -> dict[str, str]:
    return os.environ | ({} if cgroup else {"LOWEST_PRIORITY_CGROUP": "off"})


def autogroup() -> list[str] | None:
    return AUTOGROUP.read_text().split() if AUTOGROUP.exists() else None


def launchers_groups() -> list[Path]:
    return sorted(CGROUPS.glob("assistant-lowest-priority-*")) if CGROUPS.exists() else []


def test_without_cgroups_the_command_runs_lowest_in_a_session_and_autogroup_of_its_own() -> None:
    mine = autogroup()
    done = launch(sys.executable, "-c", REPORT, cgroup=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["sid"] == seen["pgid"] == seen["pid"] != os.getsid(0)  # same PID: exec'd
    assert seen["nice"] == 19
    assert seen["idle_class"] is (sys.platform == "linux")
    if mine is not None:  # Linux with autogroups: a new group, niced; ours left as it was
        assert seen["autogroup"][0] != mine[0] and seen["autogroup"][-1] == "19"
        assert autogroup() == mine


@pytest.mark.skipif(not can_make_cgroups, reason="needs root and cgroup v1's cpu.idle")
def test_the_command_and_all_it_starts_run_in_an_idle_cgroup_removed_after() -> None:
    before = launchers_groups()
    # (the report from a grandchild in a session of its own, as the assistant's programs are)
    grandchild = (
        "import subprocess, sys; "
        f"subprocess.run([sys.executable, '-c', {REPORT!r}], start_new_session=True)"
    )
    done = launch(sys.executable, "-c", grandchild)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["cgroup"].rsplit("/", 1)[-1].startswith("assistant-lowest-priority-")
    assert seen["cgroup_idle"] == "1" and seen["nice"] == 19 and seen["idle_class"]
    assert launchers_groups() == before  # removed once the command ended


def test_a_group_leader_stays_in_our_session_and_leaves_its_group_alone() -> None:
    """Started as a process group leader it can't have a session of its own: niced alone, its
    session's autogroup (here ours, as a user's terminal's would be) is not niced."""
    mine = autogroup()
    done = launch(sys.executable, "-c", REPORT, group_leader=True)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["sid"] == os.getsid(0) and seen["nice"] == 19
    assert seen["autogroup"] == mine and autogroup() == mine


@pytest.mark.parametrize("cgroup", [True, False], ids=["cgroup where it can", "no cgroup"])
def test_exit_status_and_a_missing_command(cgroup: bool) -> None:
    assert launch(sys.executable, "-c", "raise SystemExit(3)", cgroup=cgroup).returncode == 3
    missing = launch("no-such-command-here", cgroup=cgroup)
    assert missing.returncode == 127
    assert missing.stderr.strip() == (
        "lowest_priority.py: cannot run no-such-command-here: No such file or directory"
    )
    assert launch(cgroup=cgroup).returncode == 2


@pytest.mark.parametrize("cgroup", [True, False], ids=["cgroup where it can", "no cgroup"])
def test_ctrl_c_to_its_group_reaches_a_command_started_with_it_ignored(cgroup: bool) -> None:
    """As scripts/test.sh starts it: a background job, SIGINT ignored; its exit trap sends
    SIGINT to the whole group. The launcher ends as the command did."""
    waiting = "import signal; print('ready', flush=True); signal.pause()"
    process = subprocess.Popen(
        [sys.executable, str(LAUNCHER), sys.executable, "-c", waiting],
        env=launcher_env(cgroup),
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
