"""scripts/mac_acceptance.sh's logic, in its dry-run mode: which steps, in which order, what
depends on what, what the report holds when a step fails. (The real run needs a Mac.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
        "memory",
        "download-q4",
        "chat",
        "latency",
        "download-q8",
        "bench",
        "service",
        "menubar",
        "app-build",
        "app",
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
    assert result.stdout.strip().endswith("(1 failed of 14 steps)")
    assert rows["download-q4"][0] == "FAILED (exit 1)"
    for needs_model in ("chat", "latency", "download-q8", "service"):
        assert rows[needs_model][0] == "skipped (needs download-q4)", needs_model
    assert rows["bench"][0] == "skipped (needs download-q8)"
    # What does not need the model still runs: the menu bar and the app.
    for independent in ("demo", "memory", "menubar", "app-build", "app"):
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
        (["--fail", "setup"], "--fail only goes with --dry-run"),
        (["--dry-run", "--q8", "maybe"], "--q8 takes auto, yes or no"),
    ):
        result = subprocess.run(
            ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2 and message in result.stderr
