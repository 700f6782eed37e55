#!/usr/bin/env bash
# Find a Python the assistant can be installed on, and print its path.
#   bash scripts/find_python.sh              -> the first Python that fits, or one message
#                                               saying exactly what to install (exit 1)
#   bash scripts/find_python.sh --check PY   -> exit 0 if PY fits, else say why (exit 1)
#   --root DIR   look for the fixed install locations under DIR (the tests' fake Macs)
#
# Fits: CPython 3.10-3.12 (moshi_mlx's pins: mlx 0.26, sentencepiece 0.2.0, rustymimi 0.4.1
# have macOS arm64 wheels for those only), with venv and ensurepip, and on macOS an arm64
# build running natively (an x86_64 Python under Rosetta cannot load MLX). The architecture is
# asked of the Python itself, not of the shell. Tried in order: $PYTHON (only it, when set),
# python3.12/3.11/3.10 on PATH, Homebrew's and python.org's locations, python3, then uv's
# Pythons (fetching 3.12 when uv is installed and has none).
# Only bash builtins and the commands probed are used, so the tests can fake each of them.
set -uo pipefail

MIN_MINOR=10
MAX_MINOR=12  # raise with the pins (requires-python in pyproject.toml says the same)
MINORS=(12 11 10)
RANGE="3.$MIN_MINOR-3.$MAX_MINOR"

root=""
check=""
while (($#)); do
    case "$1" in
    --root) root="${2:?--root needs a folder}"; shift 2 ;;
    --check) check="${2:?--check needs a Python}"; shift 2 ;;
    *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
done

os="$(uname -s 2>/dev/null || echo unknown)"
rejected=()  # "path: why", for the message when nothing fits
reason=""

# Sets `reason` to why $1 does not fit (empty: it fits).
probe() {
    local py="$1" out version machine venv impl
    reason=""
    # One line from the interpreter itself: version, machine, whether venv can bootstrap pip.
    # shellcheck disable=SC2016
    out="$("$py" -c 'import sys, platform
try:
    import ensurepip, venv
    ok = "venv"
except ImportError:
    ok = "no-venv"
print("%d.%d %s %s %s" % (sys.version_info[0], sys.version_info[1], platform.machine(), ok, sys.implementation.name))' 2>/dev/null)" || {
        reason="does not run"
        return
    }
    read -r version machine venv impl <<<"$out"
    local major="${version%%.*}" minor="${version#*.}"
    if [[ "$impl" != "cpython" ]]; then
        reason="$impl $version, not CPython"
    elif [[ "$major" != 3 ]] || ((minor < MIN_MINOR)); then
        reason="Python $version is too old (needs $RANGE)"
    elif ((minor > MAX_MINOR)); then
        reason="Python $version is too new: mlx 0.26, sentencepiece 0.2.0 and rustymimi 0.4.1 have no macOS arm64 wheels for it (needs $RANGE)"
    elif [[ "$os" == Darwin && "$machine" != arm64 ]]; then
        reason="Python $version runs as $machine (an Intel build, or under Rosetta); MLX needs a native arm64 Python"
    elif [[ "$venv" != venv ]]; then
        reason="Python $version has no venv/ensurepip module (on Debian/Ubuntu: apt install python3.$minor-venv)"
    fi
}

fits() {
    probe "$1"
    if [[ -n "$reason" ]]; then
        rejected+=("$1: $reason")
        return 1
    fi
}

if [[ -n "$check" ]]; then
    probe "$check"
    [[ -z "$reason" ]] && exit 0
    echo "$check: $reason" >&2
    exit 1
fi

if [[ "$os" == Darwin ]]; then
    # hw.optional.arm64 is 1 on Apple Silicon even when this shell runs under Rosetta.
    if [[ "$(sysctl -n hw.optional.arm64 2>/dev/null)" != 1 ]]; then
        echo "error: MLX needs an Apple Silicon Mac (M1 or later); this Mac has an Intel processor" >&2
        exit 1
    fi
fi

emit() {
    printf '%s\n' "$1"
    exit 0
}

if [[ -n "${PYTHON:-}" ]]; then
    # An explicit choice is the only one tried: falling back silently would hide a mistake.
    fits "$PYTHON" && emit "$PYTHON"
    echo "error: PYTHON=$PYTHON cannot be used: $reason" >&2
    exit 1
fi

seen=" "
try() {
    local py="$1"
    [[ -n "$py" && -x "$py" ]] || return 1
    [[ "$seen" == *" $py "* ]] && return 1
    seen+="$py "
    fits "$py" && emit "$py"
    return 1
}

for minor in "${MINORS[@]}"; do
    try "$(command -v "python3.$minor" 2>/dev/null)"
done
if [[ "$os" == Darwin ]]; then
    for minor in "${MINORS[@]}"; do
        try "$root/opt/homebrew/bin/python3.$minor"
        try "$root/opt/homebrew/opt/python@3.$minor/bin/python3.$minor"
        try "$root/Library/Frameworks/Python.framework/Versions/3.$minor/bin/python3.$minor"
        try "$root/usr/local/bin/python3.$minor"  # Intel Homebrew: found, and refused, by arch
    done
fi
try "$(command -v python3 2>/dev/null)"

if uv="$(command -v uv 2>/dev/null)"; then
    request=">=3.$MIN_MINOR,<3.$((MAX_MINOR + 1))"
    try "$("$uv" python find "$request" 2>/dev/null)"
    echo "Fetching Python 3.$MAX_MINOR with uv (no suitable Python installed) ..." >&2
    if "$uv" python install "3.$MAX_MINOR" >&2; then
        try "$("$uv" python find "3.$MAX_MINOR" 2>/dev/null)"
    else
        rejected+=("uv: \`uv python install 3.$MAX_MINOR\` failed")
    fi
fi

{
    echo "error: no Python $RANGE found to install the assistant on."
    if ((${#rejected[@]})); then
        echo "Found, but not usable:"
        printf '  %s\n' "${rejected[@]}"
    fi
    if [[ "$os" == Darwin ]]; then
        if [[ "$(sysctl -n sysctl.proc_translated 2>/dev/null)" == 1 ]]; then
            echo "Note: this terminal runs under Rosetta; open it natively (Get Info > uncheck \"Open using Rosetta\")."
        fi
        echo "Install one, then run scripts/setup.sh again:"
        echo "  brew install python@3.$MAX_MINOR        (Homebrew)"
        echo "  uv python install 3.$MAX_MINOR          (uv: https://docs.astral.sh/uv/)"
        echo "  or the macOS installer for 3.$MAX_MINOR from https://www.python.org/downloads/macos/"
    else
        echo "Install one, then run scripts/setup.sh again:"
        echo "  apt install python3.$MAX_MINOR python3.$MAX_MINOR-venv   (or your distribution's equivalent)"
        echo "  uv python install 3.$MAX_MINOR          (uv: https://docs.astral.sh/uv/)"
    fi
    echo "Or name one: PYTHON=/path/to/python3.$MAX_MINOR bash scripts/setup.sh"
} >&2
exit 1
