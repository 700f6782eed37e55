#!/usr/bin/env bash
# Set up everything on a fresh machine: system packages (Linux), a virtualenv in .venv on a
# Python that fits (scripts/find_python.sh: 3.10-3.12, native arm64 on a Mac), and the
# assistant with its test tools (and the menu-bar app on macOS). Safe to run again; it only
# does what is missing.
#   --browser   also a headless Chromium for the browser tests (scripts/test.sh passes it)
set -euo pipefail
cd "$(dirname "$0")/.."
browser=0
[[ "${1:-}" == "--browser" ]] && browser=1
extras="dev"

case "$(uname -s)" in
Darwin)
    extras="dev,menubar"  # rumps: the menu-bar app
    ;;
Linux)
    # PortAudio for sounddevice; PulseAudio virtual devices, espeak-ng and sox for the
    # audio tests and the demo (no sound card needed).
    pkgs=(libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins alsa-utils espeak-ng sox)
    ((browser)) && pkgs+=(chromium fonts-dejavu-core)
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
# The install is redone only when what it installed from changed: pyproject.toml, the extras or
# this checkout's place (an editable install points at it), or its command is gone. A stamp in
# .venv records the last one (a new .venv has none). A pip upgrade and a resolve cost 10-30 s
# even with nothing to do. (Bash alone here: setup runs before anything else is known to be.)
stamp=".venv/.assistant-installed"
want="extras $extras; checkout $PWD"
[[ -f pyproject.toml ]] && want+=$'\n'"$(<pyproject.toml)"
if [[ ! -x .venv/bin/assistant || ! -f "$stamp" || "$(<"$stamp")" != "$want" ]]; then
    rm -f "$stamp"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
    printf '%s\n' "$want" >"$stamp"
fi
if ((browser)) && [[ "$(uname -s)" == Darwin ]] && ! [[ -d "/Applications/Google Chrome.app" ]]; then
    .venv/bin/playwright install chromium
fi
echo "Set up: .venv/bin/assistant is ready."
