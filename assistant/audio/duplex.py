"""Full-duplex audio for the conversation loop: microphone in, speaker out, 80 ms frames.

`DuplexAudio` drives real devices through PortAudio; `file_backend.FileAudio` has the same
interface over files, for tests, demos and machines without audio devices. The loop only ever
sees `AudioIO` (interface.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import numpy as np

from ..errors import AudioError
from ..frames import FRAME_SAMPLES, SAMPLE_RATE
from . import devices as _devices
from .buffers import (
    AudioCounters,
    CaptureBuffer,
    CapturedFrame,
    OutputTiming,
    PlayedChunk,
    StreamClock,
    capture_time,
    output_underflowed,
)
from .devices import DeviceInfo, audio_error, open_rate, sounddevice, supports_rate
from .interface import StreamLatency
from .playout import PlayoutBuffer, Started
from .profiles import DEFAULT_PROFILE, PROFILES, LatencyProfile
from .pulse_watch import SinkWatch, pulse_available
from .routing import choose_devices


class DuplexAudio:
    """Separate input and output PortAudio streams (so the devices may differ), mono float32
    at 24 kHz in the latency profile's small blocks (10-40 ms; the 80 ms Mimi frames are
    assembled from them); a device that can't do 24 kHz is opened at its default rate and
    resampled with soxr, one that refuses the block size gets the next larger one (noted in
    `notices`). `read_frame` raises AudioError once a stream has died (device unplugged, sound
    server gone) or gone silent for `stall_timeout_s`.

    `latency` is PortAudio's suggested latency; "low" asks for the smallest buffer the block
    size allows (PortAudio's ALSA backend then keeps two blocks)."""

    def __init__(
        self,
        input_device: str | int | None = None,
        output_device: str | int | None = None,
        *,
        profile: LatencyProfile | None = None,
        capture_frames: int = 25,
        latency: str | float = "low",
        device_rate: int | None = None,
        stall_timeout_s: float = 2.0,
        start_timeout_s: float = 5.0,
    ) -> None:
        self._specs = (input_device, output_device)
        self.profile = profile or PROFILES[DEFAULT_PROFILE]
        self._latency_setting = latency
        self._device_rate = device_rate  # force a device rate (tests; devices that misreport)
        self.stall_timeout_s = stall_timeout_s
        self.start_timeout_s = start_timeout_s
        self._flowing = {"input": threading.Event(), "output": threading.Event()}
        self._counters = AudioCounters()
        self.capture = CaptureBuffer(max_frames=capture_frames, counters=self._counters)
        self.playout = PlayoutBuffer(self.profile.jitter, counters=self._counters)
        self.blocks = {"input": self.profile.block, "output": self.profile.block}
        self._notices: list[str] = []  # things the user should know (a larger block, ...)
        self._notices_lock = threading.Lock()
        self._watch: SinkWatch | None = None
        self.input_device: DeviceInfo | None = None
        self.output_device: DeviceInfo | None = None
        self.input_rate = self.output_rate = SAMPLE_RATE
        self._streams: list[Any] = []
        self._failure: str | None = None
        self._stopping = False
        self._started = False
        now = time.monotonic()
        self._last_callback = {"input": now, "output": now}

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> DuplexAudio:
        if self._started:
            return self
        sd = sounddevice()
        # A Bluetooth headset's microphone is avoided unless named (routing.py).
        choice, self.output_device = choose_devices(self._specs, _devices.list_devices())
        self.input_device = choice.device
        if choice.message:
            self._note(choice.message)
        self.input_rate = self._rate(self.input_device, "input")
        self.output_rate = self._rate(self.output_device, "output")
        in_cb = self._input_callback(self.input_rate)
        out_cb = self._output_callback(self.output_rate)
        for kind, device, rate, cb, cls in (
            ("input", self.input_device, self.input_rate, in_cb, sd.InputStream),
            ("output", self.output_device, self.output_rate, out_cb, sd.OutputStream),
        ):
            self._streams.append(self._open(cls, kind, device, rate, cb))
        now = time.monotonic()
        self._last_callback = {"input": now, "output": now}
        try:
            for stream in self._streams:
                stream.start()
        except Exception as e:
            self._close_streams()
            raise audio_error(e, "starting the audio streams") from None
        self._wait_flowing()
        self.capture.clear()  # whatever came during start-up is stale
        self._started = True
        if pulse_available():
            self._watch = SinkWatch(self._note).start()
        return self

    def _note(self, message: str) -> None:
        with self._notices_lock:
            self._notices.append(message)

    def drain_notices(self) -> list[str]:
        """What the user should be told since the last call (a larger block size, a speaker
        that went away ...)."""
        with self._notices_lock:
            out, self._notices = self._notices, []
        return out

    def _open(self, cls: Any, kind: str, device: DeviceInfo, rate: int, callback: Any) -> Any:
        """A stream at the profile's block size, or the next larger one the device accepts."""
        block = self.profile.block
        while True:
            try:
                stream = cls(
                    device=device.index,
                    samplerate=rate,
                    channels=1,
                    dtype="float32",
                    blocksize=round(block * rate / SAMPLE_RATE),
                    latency=self._latency_setting,
                    callback=callback,
                    finished_callback=self._finished_callback(kind),
                )
            except Exception as e:
                if block < FRAME_SAMPLES:
                    block = min(2 * block, FRAME_SAMPLES)
                    continue
                self._close_streams()
                raise audio_error(e, f"{kind} device {device.label}") from None
            if block != self.profile.block:
                self._note(
                    f"the {kind} device {device.label} refused "
                    f"{self.profile.block_ms:.0f} ms blocks; using {block * 1000 // SAMPLE_RATE} ms"
                )
            self.blocks[kind] = block
            return stream

    def _wait_flowing(self) -> None:
        """Return once input arrives and output is consumed in real time (through PulseAudio
        the output was primed, then stalled up to 1.7 s; the input took up to 1.1 s)."""
        deadline = time.monotonic() + self.start_timeout_s
        for kind, device in (("input", self.input_device), ("output", self.output_device)):
            if not self._flowing[kind].wait(max(0.0, deadline - time.monotonic())):
                self._close_streams()
                label = device.label if device else "?"
                raise AudioError(
                    f"the {kind} device {label} did not start within {self.start_timeout_s:g} s",
                    hint="is it in use, asleep or disconnected? see `assistant devices`",
                )

    def _rate(self, device: DeviceInfo, kind: str) -> int:
        if self._device_rate is None:
            return open_rate(device, kind)  # type: ignore[arg-type]
        if not supports_rate(device, kind, self._device_rate):  # type: ignore[arg-type]
            raise AudioError(f"{kind} device {device.label} can't open at {self._device_rate} Hz")
        return self._device_rate

    def stop(self) -> None:
        """Stop and close both streams (idempotent); later reads return None."""
        self._stopping = True
        if self._watch is not None:
            self._watch.stop()
        self._close_streams()
        self.capture.wake()

    def _close_streams(self) -> None:
        streams, self._streams = self._streams, []
        for stream in streams:
            try:
                stream.abort()  # abort, not stop: don't wait for queued output to drain
                stream.close()
            except Exception:
                pass  # a vanished device may refuse to close; nothing else to do

    def __enter__(self) -> DuplexAudio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the loop's side --------------------------------------------------------------------

    @property
    def realtime(self) -> bool:
        return True  # a microphone runs on its own clock

    @property
    def finished(self) -> bool:
        return self._stopping or self._failure is not None

    @property
    def counters(self) -> AudioCounters:
        return self._counters.snapshot()

    @property
    def latency(self) -> StreamLatency:
        lat = [float(getattr(s, "latency", 0.0) or 0.0) for s in self._streams]
        lat += [0.0] * (2 - len(lat))
        return StreamLatency(lat[0], lat[1], self.playout.target_ms / 1000.0)

    def read_frame(self, timeout: float | None = 1.0) -> CapturedFrame | None:
        """The next 80 ms of microphone audio, or None on timeout or after `stop`."""
        if not self._started:
            raise AudioError("the audio streams are not started")
        self._check()
        frame = self.capture.get(timeout)
        if frame is None:
            self._check()
        return frame

    def discard_input(self) -> None:
        """Forget the frames captured so far (heard before the conversation began)."""
        self.capture.clear()

    def pending_frames(self) -> int:
        return len(self.capture)

    def play_frame(self, samples: np.ndarray, tag: object = None) -> None:
        """Queue audio for the speaker (normally one 1920-sample frame). Never blocks. The
        tag comes back from `drain_started` once its first sample is heard."""
        self.playout.push(samples, tag)

    def expect_hole(self) -> None:
        self.playout.expect_hole()

    def playout_depth(self) -> float:
        """Frames queued for the speaker, not yet played."""
        return self.playout.buffered_frames()

    def describe(self) -> dict[str, object]:
        """How the audio runs now: the latency profile, block sizes, the speaker's cushion
        and the device's own output latency (ms)."""
        return {
            "profile": self.profile.name,
            "block_ms": self.blocks["output"] * 1000 / SAMPLE_RATE,
            "cushion_ms": round(self.playout.target_ms, 1),
            "device_output_ms": round(self.playout.output_lead_s * 1000, 1),
        }

    def heard_in_s(self) -> float:
        """How long from now until audio queued now reaches the listener: the cushion and
        what is queued, plus the device's own latency (from PortAudio's DAC times)."""
        return self.playout.ahead_s() + self.playout.output_lead_s

    def drain_started(self) -> list[Started]:
        return self.playout.drain_started()

    def drain_dropped(self) -> list[object]:
        return self.playout.drain_dropped()

    def drain_played(self) -> list[PlayedChunk]:
        return self.playout.drain_played()

    def upcoming(self, n: int) -> tuple[int, np.ndarray]:
        return self.playout.upcoming(n)

    def _check(self) -> None:
        if self._stopping:
            return
        if self._failure is None:
            now = time.monotonic()
            for kind in ("input", "output"):
                if now - self._last_callback[kind] > self.stall_timeout_s:
                    device = self.input_device if kind == "input" else self.output_device
                    label = device.label if device else "?"
                    self._failure = (
                        f"the {kind} device {label} stopped delivering audio for "
                        f"{self.stall_timeout_s:.1f} s (unplugged or stalled?)"
                    )
        if self._failure is not None:
            raise AudioError(self._failure, hint="see `assistant devices`")

    # --- callbacks (PortAudio's thread: never raise) ----------------------------------------

    def _finished_callback(self, kind: str) -> Any:
        def finished() -> None:
            if not self._stopping and self._failure is None:
                device = self.input_device if kind == "input" else self.output_device
                label = device.label if device else "?"
                self._failure = f"the {kind} stream on {label} stopped (device unplugged?)"
            self.capture.wake()

        return finished

    def _beat(self, kind: str, n: int, rate: int) -> float:
        """Note a callback; a stream is flowing once input arrives, or output callbacks come
        at the pace of their blocks rather than in a priming burst."""
        now = time.monotonic()
        previous, self._last_callback[kind] = self._last_callback[kind], now
        if kind == "input" or now - previous >= 0.5 * n / rate:
            self._flowing[kind].set()
        return now

    def _input_callback(self, rate: int) -> Any:
        capture = self.capture
        if rate == SAMPLE_RATE:

            def direct(indata: Any, n: int, time_info: Any, status: Any) -> None:
                with contextlib.suppress(Exception):  # never raise into PortAudio
                    self._beat("input", n, rate)
                capture.callback(indata, n, time_info, status)

            return direct
        resampler = _Resampler(rate, SAMPLE_RATE)
        clock = StreamClock(rate)

        def resampled(indata: Any, n: int, time_info: Any, status: Any) -> None:
            try:
                now = self._beat("input", n, rate)
                if status:
                    capture.count_status("input")
                t_block = clock.stamp(capture_time(now, time_info, n, rate), n)
                # Samples the resampler still holds came earlier than this block.
                t_first = t_block - resampler.backlog_s
                capture.write(resampler.process(np.asarray(indata, np.float32)[:, 0]), t_first)
            except Exception as e:
                capture.count_error(e)

        return resampled

    def _output_callback(self, rate: int) -> Any:
        playout = self.playout
        if rate == SAMPLE_RATE:

            def direct(outdata: Any, n: int, time_info: Any, status: Any) -> None:
                with contextlib.suppress(Exception):  # never raise into PortAudio
                    self._beat("output", n, rate)
                playout.callback(outdata, n, time_info, status)

            return direct
        resampler = _Resampler(SAMPLE_RATE, rate)
        timing = OutputTiming()
        ratio = SAMPLE_RATE / rate
        block = round(self.profile.block / ratio)
        # soxr's low-quality streaming mode releases output a block at a time, one or two
        # blocks behind: start with two blocks of silence in hand, then feed it exactly what
        # the device consumes, on average.
        fifo: np.ndarray = np.zeros(2 * block, dtype=np.float32)
        owed = 0.0  # fractional 24 kHz samples not yet pulled

        def resampled(outdata: Any, n: int, time_info: Any, status: Any) -> None:
            nonlocal fifo, owed
            try:
                now = self._beat("output", n, rate)
                if status:
                    playout.count_status()
                t_block = timing.stamp(now, time_info)
                owed += n * ratio
                take = int(owed)
                owed -= take
                # The pulled audio plays after the fifo and what soxr still holds.
                t_play = t_block + len(fifo) / rate + resampler.backlog_s
                # (an underflow's step then shows from this chunk: a block or two late)
                pulled = playout.pull(take, t_play, now, underflow=output_underflowed(status))
                fifo = np.concatenate([fifo, resampler.process(pulled)])
                out, fifo = fifo[:n], fifo[n:]
                outdata[: len(out)] = out.reshape(-1, 1)
                outdata[len(out) :] = 0  # not expected after the head start
            except Exception as e:
                with contextlib.suppress(Exception):
                    outdata.fill(0)
                playout.count_error(e)

        return resampled


class _Resampler:
    """soxr's streaming resampler, counting what it holds back."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        import soxr

        # "LQ" (16-bit precision: plenty for speech) releases output in bursts of about one
        # input block; "HQ" held back ~35 ms at a time, which small blocks cannot absorb.
        self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="LQ")
        self.rate_in, self.rate_out = rate_in, rate_out
        self._in = self._out = 0

    @property
    def backlog_s(self) -> float:
        return max(0.0, self._in / self.rate_in - self._out / self.rate_out)

    def process(self, x: np.ndarray) -> np.ndarray:
        y = self._stream.resample_chunk(np.ascontiguousarray(x, dtype=np.float32))
        self._in += len(x)
        self._out += len(y)
        return np.asarray(y, dtype=np.float32)
