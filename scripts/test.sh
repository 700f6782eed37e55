#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, lint included. Extra args go to pytest, in
# both phases below (a -m of your own replaces the phase's: call pytest directly for that).
set -euo pipefail
cd "$(dirname "$0")/.."
# The runtime, plus the test tools (pytest, ruff, mypy, playwright, PulseAudio, a browser):
# setup.sh alone installs only what the assistant needs to run.
bash scripts/setup.sh --test-tools
.venv/bin/ruff check assistant tests scripts benchmarks
.venv/bin/ruff format --check assistant tests scripts benchmarks
.venv/bin/mypy  # settings and strictness: [tool.mypy] in pyproject.toml
# The synthetic files the tests share (the 385 MB Mimi, the tiny checkpoints), made once for
# both phases below (tests/support/shared_files.py), removed on the way out.
ASSISTANT_TEST_SHARED="$(mktemp -d "${TMPDIR:-/tmp}/assistant-tests.XXXXXX")"
export ASSISTANT_TEST_SHARED
on_exit=('rm -rf "$ASSISTANT_TEST_SHARED"')
trap 'for step in "${on_exit[@]}"; do eval "$step"; done' EXIT
if [[ "$(uname -s)" == Linux ]]; then
    # Virtual microphone and speaker for the real-audio tests (no sound card needed). One
    # started here is stopped on the way out, however the tests end; one already running
    # (started by hand, or by another run) is left alone.
    if ! bash scripts/pulseaudio.sh status 2>/dev/null; then
        on_exit+=('bash scripts/pulseaudio.sh stop')
    fi
    eval "$(bash scripts/pulseaudio.sh start)"
fi
# Two phases: the tests where timing does not matter on every core (pytest-xdist, one file per
# worker so module fixtures are built once), then the real-time ones (real audio devices,
# asserted answer times: marker `realtime`) alone on an idle machine. Both always run; the
# run fails if either does. "No test selected" (exit 5) is not a failure: extra arguments
# may pick tests from one phase only. TEST_WORKERS=1 runs the first phase in one process.
# The tests themselves fail the run if a process they started outlives them (conftest.py).
workers="${TEST_WORKERS:-$(.venv/bin/python -c 'import os; print(min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 4))')}"
status=0 empty=0
phase() {
    local rc=0
    .venv/bin/python -m pytest "$@" || rc=$?
    if ((rc == 5)); then empty=$((empty + 1)); elif ((rc != 0)); then status=$rc; fi
}
if ((workers > 1)); then
    phase -m "not realtime" -n "$workers" --dist loadfile "$@"
else
    phase -m "not realtime" "$@"
fi
phase -m realtime "$@"
((empty == 2)) && status=5  # nothing at all was selected
exit "$status"
