"""Linux only: notice when PulseAudio moves our speaker stream because its sink went away.

Through PortAudio's ALSA backend a PulseAudio sink is not a device PortAudio knows: when the
sink that plays Moshi disappears (headphones unplugged, a sink unloaded), PulseAudio moves the
stream to another sink and PortAudio sees nothing. This asks PulseAudio itself (`pactl`), from
a background thread every couple of seconds, which sink this process's playback stream is on,
and reports a change once. (On macOS, PortAudio's CoreAudio backend stops a stream whose device
vanishes, which the stream's own failure detection already reports.)
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

POLL_S = 2.0


def pulse_available() -> bool:
    return sys.platform.startswith("linux") and shutil.which("pactl") is not None


def _pactl(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["pactl", *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def sink_of_process(pid: int) -> str | None:
    """The name of the sink this process's playback stream is on, or None (no PulseAudio, no
    such stream)."""
    listing = _pactl("list", "sink-inputs")
    if not listing:
        return None
    sink_index = None
    for block in listing.split("\n\n"):
        if f'application.process.id = "{pid}"' in block:
            for line in block.splitlines():
                line = line.strip()
                if line.startswith("Sink:"):
                    sink_index = line.split(":", 1)[1].strip()
    if sink_index is None:
        return None
    sinks = _pactl("list", "short", "sinks") or ""
    for line in sinks.splitlines():
        fields = line.split("\t")
        if len(fields) > 1 and fields[0] == sink_index:
            return fields[1]
    return sink_index


class SinkWatch:
    """Polls `sink_of_process` on a daemon thread; calls `on_change(message)` once when the
    stream moved (or vanished) after it was first seen."""

    def __init__(
        self,
        on_change: Callable[[str], None],
        *,
        pid: int | None = None,
        poll_s: float = POLL_S,
        lookup: Callable[[int], str | None] = sink_of_process,
    ) -> None:
        self.on_change = on_change
        self.pid = os.getpid() if pid is None else pid
        self.poll_s = poll_s
        self.lookup = lookup
        self.first: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pulse-sink-watch", daemon=True)

    def start(self) -> SinkWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> str | None:
        """One look; the message if the stream moved since it was first seen."""
        sink = self.lookup(self.pid)
        if self.first is None:  # not seen yet (or not through PulseAudio at all)
            self.first = sink
            return None
        if sink == self.first:
            return None
        where = f"now plays on {sink!r}" if sink else "has no speaker any more"
        return f"the speaker {self.first!r} went away; Moshi {where}"

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                message = self.check()
            except Exception:  # a watcher must never take the conversation down
                log.exception("watching the PulseAudio sink failed")
                return
            if message:
                self.on_change(message)
                return
