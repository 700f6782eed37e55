#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, lint included. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
.venv/bin/ruff check assistant tests scripts
.venv/bin/ruff format --check assistant tests scripts
.venv/bin/mypy  # settings and strictness: [tool.mypy] in pyproject.toml
if [[ "$(uname -s)" == Linux ]]; then
    # Virtual microphone and speaker for the real-audio tests (no sound card needed).
    eval "$(bash scripts/pulseaudio.sh start)"
fi
.venv/bin/python -m pytest "$@"
