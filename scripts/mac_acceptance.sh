#!/usr/bin/env bash
# The Mac acceptance run: everything a user does, from a fresh clone, with one Markdown report
# of every figure and every failure to attach to a bug report.
#
#   bash scripts/mac_acceptance.sh                  # on an Apple Silicon Mac, ~20-40 min
#   bash scripts/mac_acceptance.sh --dry-run        # anywhere: print the plan, run nothing
#
# Steps: the machine; a fresh clone of this checkout; scripts/setup.sh; `assistant demo`; the
# audio devices and their CoreAudio kinds (nothing opened); the memory verdicts; download
# moshiko q4; 30 s of conversation through the default devices (talk to it); listen first
# (stay silent, then speak: no Moshi audio before your first word); `assistant latency`;
# `assistant bench` (q4 vs q8 when q8 fits, else q4); the service (serve, ctl start/stop/quit);
# the menu bar (SIGTERM takes its Quit path: the service it started stops); the app (build,
# signature, open it: its launcher must run Python as a child; allow the microphone when macOS
# asks for "Moshi Assistant"; SIGTERM to it stops its service); the login item (the app moved,
# then opened the way the login item opens it: by bundle id).
# A failed step is reported with its output's tail; the steps that need it are skipped.
#
#   --workdir DIR   where the clone, logs and report go (default: a new folder in /tmp)
#   --report FILE   the report (default: WORKDIR/report.md)
#   --source PATH   what to clone (default: this checkout; a URL works too)
#   --q8 auto|yes|no  bench q8 too: when it fits (auto), always, never
#   --chat-seconds N  how long to talk (default 30)
#   --dry-run       plan only: each step's command, nothing run
#   --fail STEP     with --dry-run: pretend STEP fails (to check the report; the tests use it)
#   --hang STEP     with --dry-run: really run STEP as a stand-in that never ends (it starts
#                   processes of its own), to check timeouts and Ctrl-C (the tests use it)
#   --hang-limit S  the hanging step's time limit (default: that step's own)
#
# Each step runs in a process group of its own (job control, `set -m`): at its time limit, or
# on Ctrl-C, the whole group is ended (TERM, then KILL 10 s later), so nothing a step started
# (`assistant chat`, `serve`, the menu bar) outlives it; after Ctrl-C the report is still
# written, the remaining steps marked as not run, and the exit status is 130.
#
# Written for the bash 3.2 that macOS ships (no associative arrays, no `timeout` command).
set -uo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
workdir=""
report=""
source="$here"
q8="auto"
chat_seconds=30
dry=0
fail_step=""
hang_step=""
hang_limit=""

while (($#)); do
    case "$1" in
    --workdir) workdir="${2:?--workdir needs a folder}"; shift 2 ;;
    --report) report="${2:?--report needs a file}"; shift 2 ;;
    --source) source="${2:?--source needs a path or URL}"; shift 2 ;;
    --q8) q8="${2:?--q8 needs auto, yes or no}"; shift 2 ;;
    --chat-seconds) chat_seconds="${2:?--chat-seconds needs a number}"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --fail) fail_step="${2:?--fail needs a step name}"; shift 2 ;;
    --hang) hang_step="${2:?--hang needs a step name}"; shift 2 ;;
    --hang-limit) hang_limit="${2:?--hang-limit needs seconds}"; shift 2 ;;
    -h | --help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$q8" in auto | yes | no) ;; *) echo "error: --q8 takes auto, yes or no" >&2; exit 2 ;; esac
if [[ -n "$fail_step$hang_step" ]] && ((!dry)); then
    echo "error: --fail and --hang only go with --dry-run" >&2
    exit 2
fi
if ((!dry)); then
    if [[ "$(uname -s)" != Darwin ]]; then
        echo "error: this is the Mac acceptance run; elsewhere use --dry-run" >&2
        exit 2
    fi
fi

[[ -n "$workdir" ]] || workdir="$(mktemp -d "${TMPDIR:-/tmp}/moshi-acceptance.XXXXXX")"
mkdir -p "$workdir/logs"
workdir="$(cd "$workdir" && pwd)"
[[ -n "$report" ]] || report="$workdir/report.md"
clone="$workdir/moshi-assistant"
assistant="$clone/.venv/bin/assistant"
python="$clone/.venv/bin/python"
# The user's own data folder and model cache, as the app uses them (the app cannot be handed
# another one): sessions of this run land among theirs, downloads are reused.

# --- the step machinery ---------------------------------------------------------------------
names=()     # step names, in order
results=()   # passed | FAILED (exit N) | skipped (needs X) | planned
durations=() # seconds
commands=()  # what ran
figures=""   # Markdown collected from the steps that measure something

now() { date +%s; }

interrupted=0
trap 'interrupted=1' INT TERM

# End a step's process group: TERM, then KILL whatever is left 10 s later.
end_group() {
    local pgid="$1" i
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 -- "-$pgid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL -- "-$pgid" 2>/dev/null
}

# run_limited LIMIT_S LOG command...: "$@" in a process group of its own (from the clone, or
# the work folder before there is one), its output in LOG, stdin closed. Returns its exit
# status; 124 at the time limit and 130 on Ctrl-C, its whole group ended either way (macOS has
# no `timeout`, and a plain background job would share this script's group).
run_limited() {
    local limit="$1" log="$2"
    shift 2
    set -m # job control: the next background job leads a process group of its own
    (
        cd "$clone" 2>/dev/null || cd "$workdir" || exit 1
        "$@"
    ) </dev/null >"$log" 2>&1 &
    local pid=$!
    set +m
    local deadline=$(($(now) + limit)) why=""
    while kill -0 "$pid" 2>/dev/null; do
        if ((interrupted)); then why=interrupted; break; fi
        if (($(now) >= deadline)); then why=timeout; break; fi
        sleep 0.2
    done
    if [[ -n "$why" ]]; then
        end_group "$pid"
        wait "$pid" 2>/dev/null
        [[ "$why" == timeout ]] && return 124
        return 130
    fi
    wait "$pid"
    local rc=$?
    end_group "$pid" # what the step left behind in its group (a background server)
    return "$rc"
}

# With --hang: a step that never ends, with processes of its own (like a hung `assistant chat`
# and the server it started). Their PIDs go to logs/hang.pids for the tests to check.
hang_stand_in() {
    sleep 100000 &
    echo $! >>"$workdir/logs/hang.pids"
    (sleep 100000) &
    echo $! >>"$workdir/logs/hang.pids"
    sh -c 'echo $PPID' >>"$workdir/logs/hang.pids" # this subshell (bash 3.2: no BASHPID)
    echo "hanging"
    wait
}

passed() {
    local i
    for ((i = 0; i < ${#names[@]}; i++)); do
        [[ "${names[$i]}" == "$1" ]] && [[ "${results[$i]}" == passed || "${results[$i]}" == planned ]] && return 0
    done
    return 1
}

# step NAME LIMIT_S NEEDS LABEL -- command...
#   NEEDS: the step that must have passed ("-": none); LABEL: what the report says it ran
#   ("-": the command itself).
step() {
    local name="$1" limit="$2" needs="$3" label="$4"
    shift 5
    local shown
    shown="$(printf '%q ' "$@")"
    shown="${shown% }"
    [[ "$label" == - ]] || shown="$label"
    names+=("$name")
    commands+=("$shown")
    if ((interrupted)); then
        results+=("not run (interrupted)")
        durations+=(0)
        return 1
    fi
    if [[ "$needs" != - ]] && ! passed "$needs"; then
        results+=("skipped (needs $needs)")
        durations+=(0)
        echo "== $name: skipped (needs $needs)"
        return 1
    fi
    if ((dry)) && [[ "$name" == "$hang_step" ]]; then
        limit="${hang_limit:-$limit}"
        set -- hang_stand_in
    elif ((dry)); then
        if [[ "$name" == "$fail_step" ]]; then
            results+=("FAILED (exit 1)")
            echo "(dry run: $name fails here)" >"$workdir/logs/$name.log"
        else
            results+=(planned)
        fi
        durations+=(0)
        echo "== $name: $shown"
        [[ "$name" != "$fail_step" ]]
        return
    fi
    echo "== $name ..."
    local started rc
    started="$(now)"
    run_limited "$limit" "$workdir/logs/$name.log" "$@"
    rc=$?
    durations+=($(($(now) - started)))
    if ((rc == 0)); then
        results+=(passed)
    elif ((interrupted)); then
        results+=("FAILED (interrupted)")
        echo "   interrupted: its processes were ended"
    elif ((rc == 124)); then
        results+=("FAILED (timed out after $limit s)")
        echo "   timed out after $limit s; its processes were ended; see $workdir/logs/$name.log"
    else
        results+=("FAILED (exit $rc)")
        echo "   failed (exit $rc); see $workdir/logs/$name.log"
    fi
    if [[ "$(type -t "cleanup_$name")" == function ]] && ((rc != 0)); then
        "cleanup_$name" >>"$workdir/logs/$name.log" 2>&1 # what LaunchServices started
    fi
    return "$rc"
}

figure() { figures+="$1"$'\n'; }

# A step's output goes to its log: what the user must do is said here, on the terminal.
tell() { ((dry)) || echo "   $*"; }

# --- the steps ------------------------------------------------------------------------------
machine() {
    echo "macOS $(sw_vers -productVersion 2>/dev/null) ($(sw_vers -buildVersion 2>/dev/null))"
    echo "chip: $(sysctl -n machdep.cpu.brand_string 2>/dev/null), $(uname -m)"
    echo "memory: $(($(sysctl -n hw.memsize 2>/dev/null || echo 0) / 1073741824)) GiB"
    echo "python3: $(command -v python3) $(python3 --version 2>&1)"
    echo "chosen for the venv: $(bash "$here/scripts/find_python.sh" 2>&1)"
    echo "free disk in $workdir: $(df -h "$workdir" | awk 'NR==2 {print $4}')"
}

talk() {
    echo "Talk to Moshi now, for $chat_seconds s (through the default microphone and speaker)."
    "$assistant" chat --duration "$chat_seconds" --no-dashboard
}

chat_figures() {
    # The newest conversation's summary.json: the figures a bug report needs.
    "$python" - <<'EOF'
import json, sys
from assistant.paths import sessions_dir
found = sorted(sessions_dir().glob("*-chat/summary.json"))
if not found:
    sys.exit("no chat session found")
s = json.loads(found[-1].read_text())
st = s["stages_ms"]
def p(stage):
    h = st.get(stage, {})
    return f"p50 {h.get('p50', '?')} / p95 {h.get('p95', '?')} / p99 {h.get('p99', '?')} ms"
print(f"| session | {found[-1].parent} |")
for stage in ("encode", "step", "decode", "delay"):
    print(f"| {stage} | {p(stage)} |")
print(f"| real-time factor | {s['real_time_factor']} |")
print(f"| frames | {s['frames_stepped']} answered of {s['frames_captured']} heard, "
      f"dropped {s['dropped_input']} in / {s['dropped_output']} out |")
print(f"| audio | {s['audio']} |")
print(f"| memory | {s['memory']} |")
print(f"| errors | {s['errors'] or 'none'} |")
forking = s.get("codec", {}).get("forking")
print(f"| codec workers | {'forked from one build' if forking else 'spawned (see the log)'} |")
EOF
}

devices_kinds() {
    # Lists the devices without opening any (a Bluetooth headset must keep its profile), and
    # each one's transport as CoreAudio reports it.
    "$assistant" devices || return 1
    "$python" - <<'EOF'
from assistant.audio.coreaudio import transport_kinds
kinds = transport_kinds()
for name, kind in sorted(kinds.items()):
    print(f"CoreAudio: {name!r}: {kind}")
if not kinds:
    raise SystemExit("CoreAudio reported no devices")
EOF
}

listen_first() {
    echo "Listen first: stay SILENT for 10 s (Moshi must not speak), then talk to it."
    "$assistant" chat --listen-first --duration 30 --no-dashboard || return 1
    # The newest session: Moshi's audio before the frame where the user's speech starts must
    # be exact silence, and there must be some after it.
    "$python" - <<'EOF'
import sys
import numpy as np
from assistant.audio.sound_files import read_audio
from assistant.audio.speech_onset import SpeechOnset
from assistant.frames import FRAME_SAMPLES
from assistant.paths import sessions_dir
session = sorted(sessions_dir().glob("*-chat"), key=lambda p: p.stat().st_mtime)[-1]
user, moshi = read_audio(session / "user.wav"), read_audio(session / "moshi.wav")
onset, first = SpeechOnset(), None
for i in range(len(user) // FRAME_SAMPLES):
    if onset.feed(user[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]):
        first = i
        break
if first is None:
    sys.exit(f"{session}: no speech heard on the microphone")
before = float(np.abs(moshi[: first * FRAME_SAMPLES]).max(initial=0.0))
rest = moshi[first * FRAME_SAMPLES :]
after = float(np.sqrt(np.mean(np.square(rest)))) if len(rest) else 0.0
print(f"first speech at {first * 0.08:.2f} s; Moshi before it: peak {before:.1e}; "
      f"after it: RMS {after:.1e} ({session})")
sys.exit(0 if before == 0.0 and after > 1e-4 else 1)
EOF
}

# The service a menu bar or app started must stop with it (SIGTERM takes the Quit path).
service_gone() {
    local i
    for ((i = 0; i < 30; i++)); do
        "$assistant" ctl status >/dev/null 2>&1 || { echo "its service stopped with it"; return 0; }
        sleep 1
    done
    echo "the service outlived the app that started it"
    "$assistant" ctl quit 2>/dev/null
    return 1
}

q8_fits() {
    case "$q8" in
    yes) return 0 ;;
    no) return 1 ;;
    esac
    "$assistant" info moshiko-q8 --json 2>/dev/null | "$python" -c \
        'import json, sys; sys.exit(0 if json.load(sys.stdin)["memory"]["fits"] else 1)'
}

service_cycle() {
    "$assistant" serve --port 0 &
    local serve=$!
    local i
    for ((i = 0; i < 120; i++)); do
        "$assistant" ctl status >/dev/null 2>&1 && break
        sleep 1
    done
    "$assistant" ctl status || return 1
    "$assistant" ctl start || return 1
    sleep 15
    "$assistant" ctl status
    "$assistant" ctl stop
    "$assistant" ctl quit
    wait "$serve"
}

menubar_runs() {
    "$assistant" menubar &
    local pid=$!
    sleep 20
    kill -0 "$pid" || { wait "$pid"; return 1; }  # it exited: its error is in the log above
    echo "the menu bar ran for 20 s (pid $pid)"
    kill -TERM "$pid"
    wait "$pid"
    service_gone # the service it started, stopped by its Quit path
}

app_runs() {
    local app="$clone/dist/Moshi Assistant.app"
    codesign --verify --verbose=2 "$app" || return 1
    plutil -p "$app/Contents/Info.plist"
    open "$app" || return 1
    sleep 15
    local launcher child
    launcher="$(pgrep -f "$app/Contents/MacOS/moshi-assistant" | head -1)"
    [[ -n "$launcher" ]] || { echo "the app's launcher is not running"; return 1; }
    ps -o pid,ppid,command -ax | awk -v p="$launcher" '$1 == p || $2 == p'
    child="$(pgrep -P "$launcher" | head -1)"
    [[ -n "$child" ]] || { echo "no Python under the launcher"; return 1; }
    echo "launcher $launcher runs Python $child as its child"
    echo "Starting a conversation from the app: if macOS asks, the prompt must name"
    echo "\"Moshi Assistant\" and show its sentence; click Allow, then speak for 15 s."
    local i
    for ((i = 0; i < 120; i++)); do
        "$assistant" ctl status >/dev/null 2>&1 && break
        sleep 1
    done
    "$assistant" ctl start
    sleep 20
    "$assistant" ctl status
    "$assistant" ctl stop
    "$python" - <<'EOF'
import sys
import numpy as np
from assistant.audio.sound_files import read_audio
from assistant.paths import sessions_dir
found = sorted(sessions_dir().glob("*/user.wav"), key=lambda p: p.stat().st_mtime)
pcm = read_audio(found[-1]) if found else np.zeros(1, np.float32)
rms = float(np.sqrt(np.mean(np.square(pcm)))) if len(pcm) else 0.0
print(f"the app's microphone: RMS {rms:.2e} over {len(pcm) / 24000:.1f} s "
      f"({'audio arrives' if rms > 1e-4 else 'SILENT: no permission?'})")
sys.exit(0 if rms > 1e-4 else 1)
EOF
    local heard=$?
    kill -TERM "$launcher" # forwarded to Python: the menu bar takes its Quit path
    sleep 5
    ! kill -0 "$launcher" 2>/dev/null || { echo "the launcher did not quit on SIGTERM"; return 1; }
    service_gone || return 1
    return "$heard"
}

# An app this script opened through LaunchServices is not in the step's process group.
cleanup_app() {
    local bundle pid
    for bundle in "$clone/dist" "$workdir/Applications"; do
        for pid in $(pgrep -f "$bundle/Moshi Assistant.app/Contents/MacOS/moshi-assistant"); do
            kill -TERM "$pid" 2>/dev/null # this run's app only, by PID
        done
    done
    sleep 5
    "$assistant" ctl quit 2>/dev/null
    return 0
}
cleanup_login() { cleanup_app; }

login_item() {
    # Moved (as to /Applications), then opened the way the login item opens it.
    local built="$clone/dist/Moshi Assistant.app" moved="$workdir/Applications"
    local app="$moved/Moshi Assistant.app"
    local lsregister=/System/Library/Frameworks/CoreServices.framework/Frameworks
    lsregister+=/LaunchServices.framework/Support/lsregister
    mkdir -p "$moved" && rm -rf "$app" && mv "$built" "$app" || return 1
    "$lsregister" -f "$app" 2>/dev/null
    MOSHI_ASSISTANT_APP="$app" "$python" - "$workdir/home" <<'EOF' || return 1
import plistlib, sys
from pathlib import Path
from assistant.menubar.launch_agent import LaunchAgent
agent = LaunchAgent(home=Path(sys.argv[1]))
agent.enable()
program = plistlib.loads(agent.path.read_bytes())["ProgramArguments"]
print(f"{agent.path}: {program}")
expected = ["/usr/bin/open", "-b", "dev.moshi-assistant"]
sys.exit(0 if program == expected and agent.is_enabled() else 1)
EOF
    plutil -lint "$workdir/home/Library/LaunchAgents/"*.plist || return 1
    /usr/bin/open -b dev.moshi-assistant || return 1
    sleep 15
    local launcher
    launcher="$(pgrep -f "$app/Contents/MacOS/moshi-assistant" | head -1)"
    [[ -n "$launcher" ]] || { echo "open -b did not start the moved app"; return 1; }
    echo "open -b started the moved app (launcher $launcher)"
    kill -TERM "$launcher"
    sleep 5
    service_gone
}

echo "Moshi assistant: Mac acceptance run in $workdir$( ((dry)) && echo ' (dry run)')"
if ((!dry)) && pgrep -f "assistant (serve|menubar)" >/dev/null; then
    echo "warning: an assistant service or menu bar is running; quit it first, or the service"
    echo "         and app steps will find it in their way"
fi
started_at="$(date '+%Y-%m-%d %H:%M:%S')"
a="assistant"  # how the report names the clone's .venv/bin/assistant
step machine 60 - "sw_vers; sysctl; scripts/find_python.sh" -- machine
step clone 600 - - -- git clone --quiet "$source" "$clone"
step setup 1800 clone - -- bash scripts/setup.sh
step demo 600 setup "$a demo" -- "$assistant" demo
step devices 120 setup "$a devices; CoreAudio transport kinds" -- devices_kinds
step memory 120 setup "$a info moshiko-q4" -- "$assistant" info moshiko-q4
step download-q4 3600 setup "$a download --voice moshiko --quant q4" -- \
    "$assistant" download --voice moshiko --quant q4
passed download-q4 && tell "next: talk to Moshi for $chat_seconds s once it says Listening"
step chat "$((chat_seconds + 300))" download-q4 \
    "$a chat --duration $chat_seconds --no-dashboard (you talk)" -- talk && ((!dry)) &&
    figure "### $chat_seconds s conversation"$'\n\n| | |\n|---|---|\n'"$(chat_figures 2>&1)"$'\n'
passed download-q4 && tell "next: stay SILENT for 10 s (Moshi must not speak), then talk to it"
step listen-first 400 download-q4 \
    "$a chat --listen-first --duration 30 (silent 10 s, then you talk)" -- listen_first
step latency 900 download-q4 "$a latency" -- "$assistant" latency
# q8 too when it fits this Mac (auto; a dry run plans it), or as --q8 says.
bench_q8=0
if [[ "$q8" == yes ]] || { [[ "$q8" == auto ]] && { ((dry)) || q8_fits; }; }; then
    bench_q8=1
fi
if ((bench_q8)); then
    step download-q8 3600 download-q4 "$a download --voice moshiko --quant q8" -- \
        "$assistant" download --voice moshiko --quant q8
    step bench 3600 download-q8 "$a bench --quant q4 --quant q8" -- \
        "$assistant" bench --quant q4 --quant q8 --out "$workdir/bench"
else
    step bench 3600 download-q4 "$a bench --quant q4" -- \
        "$assistant" bench --quant q4 --out "$workdir/bench"
fi
((!dry)) && [[ -f "$workdir/bench/report.md" ]] && figure "### Bench"$'\n\n'"$(cat "$workdir/bench/report.md")"
step service 900 download-q4 "$a serve; $a ctl status/start/stop/quit" -- service_cycle
step menubar 300 setup "$a menubar, 20 s" -- menubar_runs
step app-build 300 setup - -- bash scripts/build_app.sh
passed app-build && tell "next: the app opens; allow the microphone if asked, then speak for 15 s"
step app 600 app-build \
    "open the app; its launcher's Python child; a conversation from it; the microphone's level" \
    -- app_runs
step login 300 app-build "the app moved, then opened by bundle id (the login item's command)" \
    -- login_item

# --- the report -----------------------------------------------------------------------------
{
    echo "# Moshi assistant: Mac acceptance run"
    echo
    echo "- started: $started_at; report written $(date '+%Y-%m-%d %H:%M:%S')"
    echo "- source: $source, commit $(git -C "$clone" rev-parse --short HEAD 2>/dev/null ||
        git -C "$source" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "- work folder: $workdir$( ((dry)) && echo ' (dry run: nothing was run)')"
    echo "- q8 in the bench: $q8$( ((dry)) && [[ "$q8" == auto ]] && echo ' (planned; run for real only if moshiko-q8 fits)')"
    echo
    echo "## Steps"
    echo
    echo "| step | result | seconds | command |"
    echo "|---|---|---|---|"
    for ((i = 0; i < ${#names[@]}; i++)); do
        echo "| ${names[$i]} | ${results[$i]} | ${durations[$i]} | \`${commands[$i]//|/\\|}\` |"
    done
    echo
    if [[ -f "$workdir/logs/machine.log" ]]; then
        echo "## Machine"
        echo
        echo '```'
        cat "$workdir/logs/machine.log"
        echo '```'
        echo
    fi
    if [[ -n "$figures" ]]; then
        echo "## Figures"
        echo
        printf '%s\n' "$figures"
    fi
    for name in devices memory listen-first latency service login; do
        if [[ -s "$workdir/logs/$name.log" ]] && passed "$name" && ((!dry)); then
            echo "## $name"
            echo
            echo '```'
            tail -n 60 "$workdir/logs/$name.log"
            echo '```'
            echo
        fi
    done
    failed=0
    for ((i = 0; i < ${#names[@]}; i++)); do
        if [[ "${results[$i]}" == FAILED* ]]; then
            ((failed == 0)) && printf '## Failures\n\n'
            failed=$((failed + 1))
            echo "### ${names[$i]}: ${results[$i]}"
            echo
            echo '```'
            tail -n 40 "$workdir/logs/${names[$i]}.log" 2>/dev/null
            echo '```'
            echo
        fi
    done
    echo "## To check by eye"
    echo
    echo "- The microphone prompt named \"Moshi Assistant\" and showed its sentence (not Python, not Terminal)."
    echo "- System Settings > Privacy & Security > Microphone lists \"Moshi Assistant\"."
    echo "- Notifications from the app are titled \"Moshi Assistant\" (not Python or Script Editor)."
    echo "- The menu bar stayed responsive while a model loaded."
    echo "- With AirPods (or another Bluetooth headset) as the default input and output, \`assistant chat\`"
    echo "  said it listens through the built-in microphone, and the AirPods' sound stayed full quality"
    echo "  (no switch to telephone sound); \`assistant devices\` did not change their sound either."
    echo "- The mute shortcut (⌃⌥M, shown in the menu) pressed in another app muted: the menu-bar title"
    echo "  showed 🔇 at once and the web dashboard said \"microphone muted\"; Preferences ▸ Mute shortcut"
    echo "  changed it, and macOS asked for no Accessibility permission."
    echo "- Launch at login: after moving the app to /Applications and turning it on there, a logout"
    echo "  and login brought the menu bar back (System Settings > General > Login Items lists it)."
    echo "- Built from a checkout in Documents or Desktop, build_app.sh warned; the app asked for access"
    echo "  to the folder, and when denied its alert said so (not \"no Python\")."
    echo
    echo "All logs: $workdir/logs"
} >"$report"

failures=0
for ((i = 0; i < ${#names[@]}; i++)); do
    [[ "${results[$i]}" == FAILED* ]] && failures=$((failures + 1))
done
echo "Report: $report ($failures failed of ${#names[@]} steps)"
((interrupted)) && exit 130
((failures == 0))
