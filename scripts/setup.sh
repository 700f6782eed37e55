#!/usr/bin/env bash
# Set up everything on a fresh machine: system packages (Linux), a virtualenv in .venv,
# and the assistant with its test tools. Safe to run again; it only does what is missing.
#   --browser   also a headless Chromium for the browser tests (scripts/test.sh passes it)
set -euo pipefail
cd "$(dirname "$0")/.."
browser=0
[[ "${1:-}" == "--browser" ]] && browser=1

case "$(uname -s)" in
Darwin)
    if [[ "$(uname -m)" != "arm64" ]]; then
        echo "error: MLX needs an Apple Silicon Mac (arm64); this is $(uname -m)" >&2
        exit 1
    fi
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

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "error: Python 3.10 or newer is needed ($python is $("$python" --version 2>&1))" >&2
    exit 1
fi
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
if ((browser)) && [[ "$(uname -s)" == Darwin ]] && ! [[ -d "/Applications/Google Chrome.app" ]]; then
    .venv/bin/playwright install chromium
fi
echo "Set up: .venv/bin/assistant is ready."
