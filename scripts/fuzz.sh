#!/usr/bin/env bash
# The fuzzer for longer than the suite runs it: every property of tests/test_fuzz.py with
# random examples (FUZZ_EXAMPLES each, default 2000), keeping what fails in .hypothesis/ so
# the next run tries it first. A failure found here becomes an @example in the test.
#   bash scripts/fuzz.sh                 # ~2 min on 2 slow cores
#   FUZZ_EXAMPLES=20000 bash scripts/fuzz.sh -k audio
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_LONG=1 FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-2000}" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python -m pytest -q -p no:randomly -p no:xdist tests/test_fuzz.py \
    --hypothesis-show-statistics "$@"
