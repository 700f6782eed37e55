#!/usr/bin/env bash
# Build "Moshi Assistant.app": a menu-bar app (no Dock icon) that runs this checkout's
# `.venv/bin/python -m assistant menubar`, and that macOS asks the microphone permission for.
#   bash scripts/build_app.sh                  -> dist/Moshi Assistant.app
#   bash scripts/build_app.sh --out DIR        -> DIR/Moshi Assistant.app
#   --python PATH   the Python the app runs (default: this checkout's .venv/bin/python)
# Then drag it to /Applications (or open it from dist/). The bundle points at this checkout:
# rebuild it if the checkout moves. On macOS it is signed ad hoc (codesign -s -) so the
# microphone permission sticks to the app; elsewhere signing is skipped (the tests build it).
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

init = (Path(os.environ["REPO"]) / "assistant" / "__init__.py").read_text()
version = re.search(r'__version__ = "([^"]+)"', init).group(1)
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

launcher="$app/Contents/MacOS/$exe"
cat >"$launcher" <<EOF
#!/bin/bash
# Moshi Assistant: the menu bar of the checkout at $repo (made by scripts/build_app.sh).
python=$(printf '%q' "$python")
if [[ ! -x "\$python" ]]; then
    /usr/bin/osascript -e 'display alert "Moshi Assistant" message "No Python at '"\$python"'. Run scripts/setup.sh in the checkout, then scripts/build_app.sh again."' >/dev/null 2>&1
    exit 1
fi
exec "\$python" -m assistant menubar "\$@"
EOF
chmod 755 "$launcher"

if [[ "$(uname -s)" == "Darwin" ]] && command -v codesign >/dev/null; then
    codesign --force --deep -s - "$app"
else
    echo "(not macOS or no codesign: the bundle is left unsigned)"
fi
echo "Built $app"
