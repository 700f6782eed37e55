"""scripts/mac_acceptance.sh's logic, in its dry-run mode: which steps, in which order, what
depends on what, what the report holds when a step fails. (The real run needs a Mac.)"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "mac_acceptance.sh"


def dry_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict[str, tuple]]:
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--workdir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = (tmp_path / "report.md").read_text()
    rows = {}
    for line in report.splitlines():
        m = re.match(r"\| ([\w-]+) \| ([^|]+) \| \d+ \| `(.*)` \|$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return result, rows


def test_the_plan_covers_what_a_user_does_in_order(tmp_path: Path) -> None:
    result, rows = dry_run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert list(rows) == [
        "machine",
        "clone",
        "setup",
        "demo",
        "devices",
        "memory",
        "download-q4",
        "chat",
        "listen-first",
        "latency",
        "download-q8",
        "bench",
        "service",
        "menubar",
        "app-build",
        "app",
        "login",
    ]
    assert {r for r, _ in rows.values()} == {"planned"}
    assert rows["clone"][1] == f"git clone --quiet {REPO} {tmp_path}/moshi-assistant"
    assert rows["setup"][1] == "bash scripts/setup.sh"
    assert rows["download-q4"][1] == "assistant download --voice moshiko --quant q4"
    assert rows["chat"][1] == "assistant chat --duration 30 --no-dashboard (you talk)"
    assert rows["latency"][1] == "assistant latency"
    assert rows["bench"][1] == "assistant bench --quant q4 --quant q8"  # q8 if it fits
    assert rows["app-build"][1] == "bash scripts/build_app.sh"
    assert "Python child" in rows["app"][1]
    # The Mac-only checks of issue 22.
    assert rows["devices"][1] == "assistant devices; CoreAudio transport kinds"
    assert rows["listen-first"][1].startswith("assistant chat --listen-first")
    assert "opened by bundle id" in rows["login"][1]
    report = (tmp_path / "report.md").read_text()
    assert "dry run: nothing was run" in report
    assert "run for real only if moshiko-q8 fits" in report
    assert 'The microphone prompt named "Moshi Assistant"' in report
    assert "## Failures" not in report
    assert not (tmp_path / "moshi-assistant").exists()  # nothing ran


def test_without_q8_the_bench_is_q4_alone(tmp_path: Path) -> None:
    result, rows = dry_run(tmp_path, "--q8", "no", "--chat-seconds", "45")
    assert result.returncode == 0
    assert "download-q8" not in rows
    assert rows["bench"] == ("planned", "assistant bench --quant q4")
    assert rows["chat"][1] == "assistant chat --duration 45 --no-dashboard (you talk)"


def test_a_failed_step_skips_what_needs_it_and_is_reported(tmp_path: Path) -> None:
    result, rows = dry_run(tmp_path, "--fail", "download-q4")
    assert result.returncode == 1
    assert result.stdout.strip().endswith("(1 failed of 17 steps)")
    assert rows["download-q4"][0] == "FAILED (exit 1)"
    for needs_model in ("chat", "listen-first", "latency", "download-q8", "service"):
        assert rows[needs_model][0] == "skipped (needs download-q4)", needs_model
    assert rows["bench"][0] == "skipped (needs download-q8)"
    # What does not need the model still runs: the menu bar and the app.
    for independent in ("demo", "devices", "memory", "menubar", "app-build", "app", "login"):
        assert rows[independent][0] == "planned", independent
    report = (tmp_path / "report.md").read_text()
    assert "### download-q4: FAILED (exit 1)" in report
    assert "(dry run: download-q4 fails here)" in report  # the log's tail


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal off macOS")
def test_the_real_run_needs_a_mac(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "--workdir", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: this is the Mac acceptance run; elsewhere use --dry-run"
    )
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    for args, message in (
        (["--fail", "setup"], "--fail and --hang only go with --dry-run"),
        (["--dry-run", "--q8", "maybe"], "--q8 takes auto, yes or no"),
    ):
        result = subprocess.run(
            ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2 and message in result.stderr


# --- a step that hangs: its own process group, ended at its limit and on Ctrl-C ------------------
def _hang_pids(tmp_path: Path, timeout: float = 30.0) -> list[int]:
    """The stand-in's processes (itself, a child, a grandchild), once it has started them."""
    pids_file = tmp_path / "logs" / "hang.pids"
    deadline = time.monotonic() + timeout
    while not (pids_file.exists() and len(pids := pids_file.read_text().split()) == 3):
        assert time.monotonic() < deadline, "the hanging step never started"
        time.sleep(0.05)
    return [int(p) for p in pids]


def _all_gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def test_a_step_past_its_limit_is_ended_with_everything_it_started(tmp_path: Path) -> None:
    result, rows = dry_run(tmp_path, "--hang", "chat", "--hang-limit", "2")
    pids = _hang_pids(tmp_path, timeout=0)
    assert result.returncode == 1
    assert rows["chat"][0] == "FAILED (timed out after 2 s)"
    assert rows["latency"][0] == "planned"  # the run goes on
    assert _all_gone(pids), [psutil.Process(p).cmdline() for p in pids if psutil.pid_exists(p)]


def test_ctrl_c_ends_the_running_step_and_still_writes_the_report(tmp_path: Path) -> None:
    script = subprocess.Popen(
        ["bash", str(SCRIPT), "--dry-run", "--workdir", str(tmp_path), "--hang", "chat"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        pids = _hang_pids(tmp_path)
        # Ctrl-C reaches the terminal's foreground group: the script, not the step's own group.
        script.send_signal(signal.SIGINT)
        out, _ = script.communicate(timeout=30)
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
    assert script.returncode == 130, out
    assert _all_gone(pids)
    report = (tmp_path / "report.md").read_text()
    assert "| chat | FAILED (interrupted) |" in report
    assert "| latency | not run (interrupted) |" in report
    assert "| demo | planned |" in report  # what came before is kept
