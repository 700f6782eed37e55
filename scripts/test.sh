#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, lint included. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
.venv/bin/ruff check assistant tests scripts
.venv/bin/ruff format --check assistant tests scripts
.venv/bin/mypy  # settings and strictness: [tool.mypy] in pyproject.toml
if [[ "$(uname -s)" == Linux ]]; then
    # Virtual microphone and speaker for the real-audio tests (no sound card needed). One
    # started here is stopped on the way out, however the tests end; one already running
    # (started by hand, or by another run) is left alone.
    if ! bash scripts/pulseaudio.sh status 2>/dev/null; then
        trap 'bash scripts/pulseaudio.sh stop' EXIT
    fi
    eval "$(bash scripts/pulseaudio.sh start)"
fi
# The tests themselves fail the run if a process they started outlives them (conftest.py).
.venv/bin/python -m pytest "$@"
