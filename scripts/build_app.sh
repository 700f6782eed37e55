#!/usr/bin/env bash
# Build "Moshi Assistant.app": a menu-bar app (no Dock icon) that runs this checkout's
# `.venv/bin/python -m assistant menubar`, and that macOS asks the microphone permission for.
#   bash scripts/build_app.sh                  -> dist/Moshi Assistant.app
#   bash scripts/build_app.sh --out DIR        -> DIR/Moshi Assistant.app
#   --python PATH   the Python the app runs (default: this checkout's .venv/bin/python)
# Then drag it to /Applications (or open it from dist/). The bundle points at this checkout:
# rebuild it if the checkout moves. Its executable is a small native launcher
# (scripts/app_launcher.c, built here with the system's C compiler) that runs Python as its
# child, so macOS attributes the microphone to the app and shows the app's usage text. On
# macOS it is signed ad hoc (codesign -s -); elsewhere signing is skipped (the tests build it).
# The shell's ASSISTANT_HOME, HF_HOME and HF_HUB_CACHE, when set, are recorded in the settings
# file (`assistant settings --save`): the app starts without this shell's environment.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$repo/dist"
python="$repo/.venv/bin/python"

while (($#)); do
    case "$1" in
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    --python) python="${2:?--python needs a path}"; shift 2 ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

name="Moshi Assistant"
exe="moshi-assistant"
app="$out/$name.app"

# Without the Command Line Tools, /usr/bin/cc is a stub that fails with xcrun's message.
if [[ "$(uname -s)" == "Darwin" ]] && ! xcode-select -p >/dev/null 2>&1; then
    echo "error: the app's launcher needs Apple's Command Line Tools, which are not installed:" >&2
    echo "  run \`xcode-select --install\`, then this script again" >&2
    exit 1
fi

# macOS guards Documents, Desktop, Downloads and iCloud Drive: an app running Python from there
# triggers a Files & Folders prompt, and cannot start at all if it is denied.
for place in "$repo" "$python"; do
    case "$place/" in
    "$HOME/Documents/"* | "$HOME/Desktop/"* | "$HOME/Downloads/"* | "$HOME/Library/Mobile Documents/"*)
        echo "warning: $place is in a folder macOS protects (Documents, Desktop, Downloads or" >&2
        echo "  iCloud Drive): the app will ask for access to it, and cannot start if denied." >&2
        echo "  A checkout elsewhere (e.g. ~/src) avoids it." >&2
        break
        ;;
    esac
done

# plistlib writes the Info.plist: any Python 3 can, the app's own or the system's.
builder="$python"
[[ -x "$builder" ]] || builder="$(command -v python3)" || {
    echo "error: no Python to write Info.plist with (run scripts/setup.sh first)" >&2
    exit 1
}
if [[ "$(uname -s)" == "Darwin" ]] && ! "$python" -c 'import rumps' 2>/dev/null; then
    echo "warning: rumps is not installed for $python; the app needs it:" >&2
    echo "  $python -m pip install -e \"$repo[menubar]\"" >&2
fi

mkdir -p "$out"
rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"

APP_DIR="$app" APP_NAME="$name" APP_EXE="$exe" REPO="$repo" "$builder" - <<'EOF'
import os
import plistlib
import re
from pathlib import Path

pyproject = (Path(os.environ["REPO"]) / "pyproject.toml").read_text()
version = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE).group(1)  # the one version
info = {
    "CFBundleIdentifier": "dev.moshi-assistant",
    "CFBundleName": os.environ["APP_NAME"],
    "CFBundleDisplayName": os.environ["APP_NAME"],
    "CFBundleExecutable": os.environ["APP_EXE"],
    "CFBundlePackageType": "APPL",
    "CFBundleInfoDictionaryVersion": "6.0",
    "CFBundleVersion": version,
    "CFBundleShortVersionString": version,
    "LSUIElement": True,  # a menu-bar app: no Dock icon, no app menu
    "LSMinimumSystemVersion": "13.5",  # MLX's oldest macOS
    "NSHighResolutionCapable": True,
    # The sentence macOS shows when it asks for the microphone the first time.
    "NSMicrophoneUsageDescription": (
        "Moshi Assistant listens to you through the microphone and answers by voice. "
        "Everything runs on this Mac; no audio leaves it."
    ),
}
with open(Path(os.environ["APP_DIR"]) / "Contents" / "Info.plist", "wb") as f:
    plistlib.dump(info, f)
EOF

# The launcher: a native executable (see scripts/app_launcher.c for why).
cc="$(command -v cc || command -v clang || command -v gcc)" || {
    echo "error: no C compiler to build the app's launcher (on macOS: xcode-select --install)" >&2
    exit 1
}
flags=(-O2 -Wall -Wextra)
if [[ "$(uname -s)" == "Darwin" ]]; then
    flags+=(-arch arm64 -mmacosx-version-min=13.5 -framework CoreFoundation)
fi
"$cc" "${flags[@]}" -o "$app/Contents/MacOS/$exe" "$repo/scripts/app_launcher.c"
# What the launcher runs: this checkout's Python, `-m assistant menubar`.
printf 'python=%s\narg=-m\narg=assistant\narg=menubar\n' "$python" \
    >"$app/Contents/Resources/launcher.conf"

# The folders the app uses, from this shell (the app has no shell environment of its own).
if [[ -n "${ASSISTANT_HOME:-}${HF_HOME:-}${HF_HUB_CACHE:-}" ]] && [[ -x "$python" ]]; then
    "$python" -m assistant settings --save
fi

if [[ "$(uname -s)" == "Darwin" ]] && command -v codesign >/dev/null; then
    # Ad hoc: TCC keys the microphone permission to this signature (a rebuild asks again).
    codesign --force --sign - --identifier dev.moshi-assistant "$app"
else
    echo "(not macOS or no codesign: the bundle is left unsigned)"
fi
echo "Built $app"
