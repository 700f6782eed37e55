"""A handle on the private PulseAudio server of scripts/pulseaudio.sh (Linux test harness).

`vmic`: a null sink whose monitor is the default source, i.e. what is played into it is what the
assistant's microphone hears. `vspk`: the default sink, i.e. the assistant's speaker; recorded
from `vspk.monitor`. A loopback from vspk.monitor into vmic makes a room echo.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pulseaudio.sh"


class PulseError(RuntimeError):
    pass


def _run(args: list[str], timeout: float = 20, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise PulseError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _script_env(runtime_dir: Path | None) -> dict[str, str] | None:
    """The environment selecting a server: the shared one, or a separate one in runtime_dir."""
    return None if runtime_dir is None else os.environ | {"ASSISTANT_PULSE_DIR": str(runtime_dir)}


def start_server(runtime_dir: Path | None = None) -> dict[str, str]:
    """Start (or repair) the server; returns the env variables its clients need."""
    out = _run(["bash", str(SCRIPT), "start"], timeout=30, env=_script_env(runtime_dir))
    env = {}
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value
    if "PULSE_SERVER" not in env:
        raise PulseError(f"scripts/pulseaudio.sh start printed no PULSE_SERVER: {out!r}")
    return env


def stop_server(runtime_dir: Path | None = None) -> None:
    _run(["bash", str(SCRIPT), "stop"], env=_script_env(runtime_dir))


def reinit_portaudio() -> None:
    """PortAudio lists devices once, at initialisation: redo it now that the server is up."""
    if "sounddevice" in sys.modules:
        sd = sys.modules["sounddevice"]
        sd._terminate()
        sd._initialize()


class PulseAudio:
    """A running server: `env` holds what its clients need (PULSE_SERVER); `runtime_dir` is
    where it lives (None: the shared one of scripts/pulseaudio.sh)."""

    def __init__(self, env: dict[str, str], runtime_dir: Path | None = None) -> None:
        self.env = env
        self.runtime_dir = runtime_dir

    def kill(self) -> None:
        """Stop the server, as if the audio device was unplugged."""
        stop_server(self.runtime_dir)

    def restart(self) -> None:
        """Bring the server back (after `kill`) and re-initialise PortAudio."""
        self.env.update(start_server(self.runtime_dir))
        os.environ.update(self.env)
        reinit_portaudio()

    def client_env(self) -> dict[str, str]:
        return os.environ | self.env

    def pactl(self, *args: str) -> str:
        return _run(["pactl", *args], env=self.client_env())

    def play_into_mic(self, wav: Path, *, wait: bool = True) -> subprocess.Popen | None:
        """Play a WAV into the virtual microphone."""
        proc = subprocess.Popen(
            ["paplay", "-d", "vmic", str(wav)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=self.client_env(),
        )
        if not wait:
            return proc
        _, err = proc.communicate(timeout=60)
        if proc.returncode:
            raise PulseError(f"paplay failed: {err.decode(errors='replace').strip()}")
        return None

    def record_speaker(self, path: Path) -> Recorder:
        """Record the virtual speaker to a 24 kHz mono float WAV until `stop()`."""
        return Recorder(path, self.client_env())

    def add_echo(self, latency_ms: int = 60, volume_percent: int | None = None) -> int:
        """Loop the speaker back into the microphone; returns the module id."""
        module = int(
            self.pactl(
                "load-module",
                "module-loopback",
                "source=vspk.monitor",
                "sink=vmic",
                f"latency_msec={latency_ms}",
                "source_dont_move=true",
                "sink_dont_move=true",
            ).strip()
        )
        if volume_percent is not None:
            self.pactl("set-sink-input-volume", self._loopback_input(module), f"{volume_percent}%")
        return module

    def _loopback_input(self, module: int) -> str:
        """The sink input a loopback module created (its "Owner Module" in the long listing)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            current = None
            for line in self.pactl("list", "sink-inputs").splitlines():
                line = line.strip()
                if line.startswith("Sink Input #"):
                    current = line.removeprefix("Sink Input #")
                elif line == f"Owner Module: {module}" and current is not None:
                    return current
            time.sleep(0.1)
        raise PulseError(f"no sink input for loopback module {module}")

    def remove_echo(self, module: int) -> None:
        self.pactl("unload-module", str(module))


class Recorder:
    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self._proc = subprocess.Popen(
            [
                "parecord",
                "-d",
                "vspk.monitor",
                "--file-format=wav",
                "--format=float32le",
                "--rate=24000",
                "--channels=1",
                "--latency-msec=100",
                str(path),
            ],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        # Recording once the file grows (connected, data flowing): a fixed wait was too short
        # on a busy machine.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._proc.poll() is None:
            if path.exists() and path.stat().st_size > 4096:
                break
            time.sleep(0.05)

    def stop(self) -> np.ndarray:
        """Stop recording; the samples recorded."""
        from assistant.audio.sound_files import read_audio

        self._proc.terminate()  # parecord finalises the WAV header on SIGTERM
        try:
            self._proc.wait(timeout=10)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
        return read_audio(self.path)


def make_speech(path: Path, text: str) -> Path:
    """Real speech at 24 kHz mono 16-bit, from espeak-ng and sox (installed by setup.sh)."""
    raw = path.with_suffix(".espeak.wav")
    _run(["espeak-ng", "-w", str(raw), text], timeout=60)
    # Half a second of silence around it: PulseAudio may skip a little when a stream starts.
    args = ["sox", str(raw), "-r", "24000", "-c", "1", "-b", "16", str(path), "pad", "0.5", "0.5"]
    _run(args, timeout=60)
    return path


def best_match(signal: np.ndarray, template: np.ndarray) -> tuple[int, float]:
    """Where `template` sits in `signal` (signal[lag:] ~ template) and the normalised
    correlation there (1.0 = identical up to gain), over the template's full length."""
    x = np.asarray(signal, np.float64)
    t = np.asarray(template, np.float64)
    size = 1 << (len(x) + len(t)).bit_length()
    c = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(t, size)), size)
    lag = int(np.argmax(c))
    # Circular correlation: index k is lag k for k < len(x), and lag k - size (the template
    # starting before the signal) only for the last len(t) - 1 indices. (Unwrapping at size // 2
    # turned a late match, in a long recording, into a "negative" lag with no overlap.)
    if lag > size - len(t):
        lag -= size
    lo, hi = max(lag, 0), min(len(x), lag + len(t))
    if hi <= lo:
        return lag, 0.0
    seg, ref = x[lo:hi], t[lo - lag : hi - lag]
    return lag, float(np.dot(seg, ref) / np.sqrt(np.dot(seg, seg) * np.dot(t, t) + 1e-30))


def piecewise_match(signal: np.ndarray, template: np.ndarray, seconds: float = 1.0) -> float:
    """Median over the template's 1 s pieces (those with sound) of their best correlation in
    `signal`: content intact, even where a gap shifted everything after it."""
    n = round(seconds * 24000)
    scores = [
        best_match(signal, piece)[1]
        for i in range(0, len(template) - n + 1, n)
        if rms(piece := template[i : i + n]) > 0.01
    ]
    return float(np.median(scores))


def overlap(signal: np.ndarray, template: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The parts of `signal` and `template` that line up when the template starts at `lag`."""
    lo, hi = max(lag, 0), min(len(signal), lag + len(template))
    return signal[lo:hi], template[lo - lag : hi - lag]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(x, np.float64))))) if len(x) else 0.0
