#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, lint included. Extra args go to pytest, in
# both phases below (a -m of your own replaces the phase's: call pytest directly for that).
set -euo pipefail
cd "$(dirname "$0")/.."
# The runtime, plus the test tools (pytest, ruff, mypy, playwright, PulseAudio, a browser):
# setup.sh alone installs only what the assistant needs to run.
bash scripts/setup.sh --test-tools
# The synthetic files the tests share (the 385 MB Mimi, the tiny checkpoints), made once for
# both phases below (tests/support/shared_files.py), removed on the way out.
ASSISTANT_TEST_SHARED="$(mktemp -d "${TMPDIR:-/tmp}/assistant-tests.XXXXXX")"
export ASSISTANT_TEST_SHARED
realtime_log="$ASSISTANT_TEST_SHARED.realtime.log" lint_log="$ASSISTANT_TEST_SHARED.lint.log"
on_exit=('rm -rf "$ASSISTANT_TEST_SHARED" "$realtime_log" "$lint_log"')
# (undone last first: the tests are stopped before their sound server and files go)
trap 'for ((i = ${#on_exit[@]} - 1; i >= 0; i--)); do eval "${on_exit[i]}"; done' EXIT
# Where the environment says not to write compiled modules (PYTHONDONTWRITEBYTECODE, set on some
# machines and CI images), each of the ~1,000 Python processes a run starts would compile the
# assistant (and pytest its rewritten tests) again: 0.1-0.2 s, 2.5 s for a pytest process. They
# are cached for the run in its own folder instead, never in the checkout.
if [[ -n "${PYTHONDONTWRITEBYTECODE:-}" ]]; then
    unset PYTHONDONTWRITEBYTECODE
    export PYTHONPYCACHEPREFIX="$ASSISTANT_TEST_SHARED/pycache"
fi
# numpy's OpenBLAS starts a thread per core in every process that imports it, ~0.08 s of CPU
# each here, and a run starts hundreds (every command, each codec's server): the tests' numpy
# work is small and the two phases below already keep every core busy. (macOS's numpy uses
# Accelerate: no such pool.)
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
if [[ "$(uname -s)" == Linux ]]; then
    # Virtual microphone and speaker for the real-audio tests (no sound card needed). One
    # started here is stopped on the way out, however the tests end; one already running
    # (started by hand, or by another run) is left alone.
    if ! bash scripts/pulseaudio.sh status 2>/dev/null; then
        on_exit+=('bash scripts/pulseaudio.sh stop')
    fi
    eval "$(bash scripts/pulseaudio.sh start)"
fi
# Two phases, side by side, and lint. The real-time tests (real audio devices, asserted answer
# times: marker `realtime`) mostly wait for audio to play at its own pace: they run one at a
# time at normal priority, while lint and the other tests (pytest-xdist, one file per worker so
# module fixtures are built once) take the CPU they leave, at the lowest priority (below), so
# a real-time test finds the machine as good as idle whenever it needs it. The real-time
# phase's report is printed after the other's, not interleaved with it. Lint runs beside the
# first phase too (mypy alone would leave a core idle); its report comes between the two.
# Every step always runs; the run fails if any fails. "No test selected" (exit 5) is not a
# failure: extra arguments may pick tests from one phase only. TEST_WORKERS=1 runs the first
# phase in one process. The tests themselves fail the run if a process they started outlives
# them (conftest.py).
# A worker per core and one more (at most 5): the parallel tests spend part of their time
# waiting for the programs they start, and the extra worker, at the lowest priority like the
# others, takes only CPU left idle (2 cores: the run went from 320-330 s to 307 s).
workers="${TEST_WORKERS:-$(.venv/bin/python -c 'import os; print(min((len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) + 1, 5))')}"
status=0 empty=0
counted() {  # the exit code of a finished step, counted
    local rc=$1
    if ((rc == 5)); then empty=$((empty + 1)); elif ((rc != 0)); then status=$rc; fi
}
# Each step runs in a session of its own, stopped on the way out by the exit trap: a Ctrl-C
# reaches it once, from there. (From the terminal too, a second one would cut its teardown short:
# a sound server it was starting left running.)
stop_group() {  # stop_group SIGNAL PID: a step's session (if still running), then wait for it
    [[ -n "$2" ]] || return 0
    kill -"$1" -- -"$2" 2>/dev/null || kill -"$1" "$2" 2>/dev/null || return 0
    wait "$2" 2>/dev/null || true
}
# (A job started with & ignores Ctrl-C in a script; this one is given it back, so that the exit
# trap's ends it through pytest's own teardown: its sound server stopped too.)
.venv/bin/python -c 'import os, signal, sys
try:
    os.setsid()
except OSError:  # already a process group leader
    pass
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.executable, [sys.executable, "-m", "pytest", *sys.argv[1:]])' \
    -m realtime "$@" >"$realtime_log" 2>&1 &
realtime_pid=$!
on_exit+=('stop_group INT "$realtime_pid"')
lint() {
    .venv/bin/ruff check assistant tests scripts benchmarks &&
        .venv/bin/ruff format --check assistant tests scripts benchmarks &&
        .venv/bin/mypy # settings and strictness: [tool.mypy] in pyproject.toml
}
# The lowest priority there is: nice 19, on Linux the idle class, and an idle cgroup where the
# machine allows it, else a session whose autogroup is niced too (scripts/lowest_priority.py).
lowest=(.venv/bin/python scripts/lowest_priority.py)
"${lowest[@]}" bash -c "$(declare -f lint); lint" >"$lint_log" 2>&1 &
lint_pid=$!
on_exit+=('stop_group TERM "$lint_pid"')
parallel=()
# (in the order collected: conftest.py puts the files with slow cases first)
((workers > 1)) && parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder)
rc=0
# (${a[@]+"${a[@]}"}: an empty array is "unbound" to macOS's bash 3.2 under set -u)
"${lowest[@]}" .venv/bin/python -m pytest -m "not realtime" ${parallel[@]+"${parallel[@]}"} "$@" &
tests_pid=$!
on_exit+=('stop_group INT "$tests_pid"')
wait "$tests_pid" || rc=$?
tests_pid=""
counted "$rc"
rc=0
wait "$lint_pid" || rc=$?
lint_pid=""
echo "--- lint (ruff, mypy: run beside the tests) ---"
cat "$lint_log"
((rc == 0)) || status=$rc
rc=0
wait "$realtime_pid" || rc=$?
realtime_pid=""
echo "--- real-time tests (run beside the others, at normal priority) ---"
cat "$realtime_log"
counted "$rc"
((empty == 2)) && status=5  # nothing at all was selected
exit "$status"
