#!/usr/bin/env bash
# Set up what the assistant needs to run on a fresh machine: system packages (Linux), a
# virtualenv in .venv on a Python that fits (scripts/find_python.sh: 3.10-3.12, native arm64
# on a Mac), and the assistant (and the menu-bar app on macOS). Safe to run again; it only
# does what is missing.
#   --test-tools   also what the tests need: pytest, ruff, mypy, playwright... (the `dev`
#                  extra), PulseAudio virtual devices and sox on Linux, a headless Chromium
#                  for the browser tests. scripts/test.sh passes it. (--browser: the same.)
set -euo pipefail
cd "$(dirname "$0")/.."
tests=0
[[ "${1:-}" == "--test-tools" || "${1:-}" == "--browser" ]] && tests=1
extras=()
((tests)) && extras+=(dev)

case "$(uname -s)" in
Darwin)
    extras+=(menubar)  # rumps: the menu-bar app
    ;;
Linux)
    # PortAudio for sounddevice, espeak-ng for the demo's sentence; for the tests PulseAudio
    # virtual devices (no sound card needed), sox and a browser.
    pkgs=(libportaudio2 espeak-ng)
    ((tests)) && pkgs+=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils sox
        chromium fonts-dejavu-core)
    missing=()
    for p in "${pkgs[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        sudo=""
        [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
        echo "Installing system packages: ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
    ;;
esac

# A venv on a Python that does not fit (too new for the pinned wheels, x86_64 under Rosetta,
# its base Python uninstalled) is rebuilt rather than reused.
if [[ -e .venv ]] && ! why="$("$BASH" scripts/find_python.sh --check .venv/bin/python 2>&1)"; then
    echo "Rebuilding .venv: ${why#*: }"
    rm -rf .venv
fi
if [[ ! -x .venv/bin/python ]]; then
    # The first Python 3.10-3.12 that fits (PYTHON=... picks one), or one message saying what
    # to install.
    python="$("$BASH" scripts/find_python.sh)" || exit 1
    echo "Creating .venv with $python ($("$python" --version 2>&1))"
    "$python" -m venv .venv
fi
target="."
if ((${#extras[@]})); then
    target=".[$(IFS=,; echo "${extras[*]}")]"
fi
# The install is redone only when what it installed from changed: pyproject.toml, the extras or
# this checkout's place (an editable install points at it), or its command is gone. A stamp in
# .venv records the last one (a new .venv has none). A pip upgrade and a resolve cost 10-30 s
# even with nothing to do. (Bash alone here: setup runs before anything else is known to be.)
stamp=".venv/.assistant-installed"
want="install $target; checkout $PWD"
[[ -f pyproject.toml ]] && want+=$'\n'"$(<pyproject.toml)"
# The runtime's modules are compiled at install, so that even the first start, or every start
# where PYTHONDONTWRITEBYTECODE is set, does not compile them. The test tools' install skips
# that (~10 s of CPU): scripts/test.sh keeps what its run compiles in a cache of its own.
compile=1
((tests)) && compile=0
install_with_uv() {
    local flags=(-q --python .venv/bin/python)
    ((compile)) && flags+=(--compile-bytecode)
    .venv/bin/uv pip install "${flags[@]}" -e "$target"
}
pip_install=(.venv/bin/python -m pip install -q --disable-pip-version-check)
install_with_pip() {
    local no_compile=()
    ((compile)) || no_compile=(--no-compile)
    "${pip_install[@]}" --upgrade pip
    # (${a[@]+"${a[@]}"}: an empty array is "unbound" to macOS's bash 3.2 under set -u)
    "${pip_install[@]}" ${no_compile[@]+"${no_compile[@]}"} -e "$target"
}
if [[ ! -x .venv/bin/assistant || ! -f "$stamp" || "$(<"$stamp")" != "$want" ]]; then
    rm -f "$stamp"
    # uv installs the ~90 packages in ~5 s where pip takes ~30 s. It comes into the venv through
    # pip (a wheel for every platform the assistant runs on). pip does the install where uv
    # can't be had, or can't install (a package index only pip is set up for, pip.conf).
    if [[ ! -x .venv/bin/uv ]]; then
        "${pip_install[@]}" uv >/dev/null 2>&1 || true
    fi
    if [[ ! -x .venv/bin/uv ]]; then
        echo "(uv could not be installed: installing with pip, which takes longer)"
        install_with_pip
    elif ! install_with_uv; then
        echo "(uv could not install it: trying pip)"
        install_with_pip
    fi
    printf '%s\n' "$want" >"$stamp"
fi
if ((tests)) && [[ "$(uname -s)" == Darwin ]] && ! [[ -d "/Applications/Google Chrome.app" ]]; then
    .venv/bin/playwright install chromium
fi
echo "Set up: .venv/bin/assistant is ready."
