#!/usr/bin/env bash
# A private PulseAudio server with two virtual devices, for audio tests without a sound card
# (Linux only: PortAudio reaches them through ALSA's pulse plugin; no sound card needed).
#
#   scripts/pulseaudio.sh start    start it (or repair it) and print the env exports to use
#   scripts/pulseaudio.sh stop     stop it (no-op when it is not running)
#   scripts/pulseaudio.sh status   exit 0 and describe it when running, exit 3 otherwise
#
# Devices: null sinks `vmic` and `vspk` at 24 kHz mono float32. Whatever is played into `vmic`
# is what the assistant hears (default source `vmic.monitor`); what the assistant plays goes to
# `vspk` (default sink) and can be recorded from `vspk.monitor`.
# Use:  eval "$(bash scripts/pulseaudio.sh start)"
# Only the export lines go to stdout; everything else goes to stderr.
set -euo pipefail

RUNTIME_DIR="${ASSISTANT_PULSE_DIR:-/tmp/assistant-pulse-$(id -u)}"
SOCKET="$RUNTIME_DIR/pulse/native"
LOG="$RUNTIME_DIR/pulseaudio.log"
SINK_ARGS="format=float32le rate=24000 channels=1"

# pulseaudio finds its pid file through XDG_RUNTIME_DIR; clients find the server through
# PULSE_SERVER (no cookie needed: the socket accepts anonymous clients).
export XDG_RUNTIME_DIR="$RUNTIME_DIR"
export PULSE_SERVER="unix:$SOCKET"

say() { echo "pulseaudio.sh: $*" >&2; }

running() { pactl info >/dev/null 2>&1; }

has_sink() { pactl list short sinks 2>/dev/null | awk '{print $2}' | grep -qx "$1"; }

ensure_devices() {
    local sink
    for sink in vmic vspk; do
        if ! has_sink "$sink"; then
            pactl load-module module-null-sink "sink_name=$sink" $SINK_ARGS >/dev/null
        fi
    done
    pactl set-default-sink vspk
    pactl set-default-source vmic.monitor
}

start() {
    command -v pulseaudio >/dev/null || {
        say "pulseaudio is not installed (run scripts/setup.sh)"
        exit 1
    }
    mkdir -p "$RUNTIME_DIR/pulse"
    chmod 700 "$RUNTIME_DIR"
    if ! running; then
        # A hung or dying server of ours still holds the pid file: make sure it is gone. One
        # killed with -9 leaves its socket and pid file behind.
        pulseaudio --kill 2>/dev/null || true
        for _ in $(seq 30); do
            pulseaudio --check 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$SOCKET" "$RUNTIME_DIR/pulse/pid"
        # --exit-idle-time=-1/--disallow-exit: stays up between test files; -n: no default.pa
        # (no hardware probing). As root it warns that it is not meant to run as root: harmless.
        pulseaudio --daemonize=yes --exit-idle-time=-1 --disallow-exit -n \
            --log-target="file:$LOG" \
            -L "module-native-protocol-unix socket=$SOCKET auth-anonymous=1" \
            -L "module-null-sink sink_name=vmic $SINK_ARGS" \
            -L "module-null-sink sink_name=vspk $SINK_ARGS" \
            -L module-always-sink 2>>"$LOG" || {
            say "pulseaudio failed to start; log: $LOG"
            tail -n 5 "$LOG" >&2 || true
            exit 1
        }
        for _ in $(seq 50); do
            running && break
            sleep 0.1
        done
        running || {
            say "pulseaudio started but does not answer on $SOCKET; log: $LOG"
            exit 1
        }
    fi
    ensure_devices
    echo "export PULSE_SERVER=$PULSE_SERVER"
}

stop() {
    running || {
        pulseaudio --check 2>/dev/null || return 0
    }
    pulseaudio --kill 2>/dev/null || true
    for _ in $(seq 50); do
        running || return 0
        sleep 0.1
    done
    say "pulseaudio did not stop"
    exit 1
}

status() {
    if running; then
        echo "running: PULSE_SERVER=$PULSE_SERVER" >&2
        pactl list short sinks >&2
        exit 0
    fi
    echo "not running" >&2
    exit 3
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
