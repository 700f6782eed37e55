"""Everything `assistant chat` (and the demo) set up around the loop, and tear down after it.

Order: resolve and validate the checkpoint (nothing is opened before it passes), load it,
warm up the engine and the codec, open the audio, create the session folder, then run.
Whatever stops the conversation (the end of an input file, Ctrl-C, a vanished device, a
codec error), the session folder is closed with everything recorded up to that moment.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import interrupts
from ..audio.aec import EchoCanceller
from ..audio.device_watch import InUse, explain_loss
from ..audio.devices import rescan_devices
from ..audio.duplex import DuplexAudio
from ..audio.file_backend import FileAudio
from ..audio.interface import AudioIO
from ..audio.profiles import DEFAULT_PROFILE, LatencyProfile, latency_profile
from ..audio.silence import SilenceDetector
from ..checkpoint.resolve import CheckpointSpec, resolve
from ..checkpoint.validate import inspect_checkpoint, require_valid
from ..codec.streaming import StreamingCodec
from ..errors import CodecFileError
from ..paths import new_session_dir, require_writable_sessions
from ..telemetry.metrics import MetricsCollector, MetricSources
from ..telemetry.model_card import ModelCard
from ..telemetry.summary import SessionSummary
from ..voice.sampling import SamplingConfig
from .checks import check_settings
from .lag import DEFAULT_MAX_DELAY_MS, LagPolicy
from .loop import ConversationLoop, LoopEvents, audio_counters
from .output_check import OutputCheck
from .session import SessionWriter

if TYPE_CHECKING:  # MLX is imported once the codec's workers are building (start-up time)
    from ..voice.engine import StreamingEngine
    from ..voice.loader import LoadedModel

CODEC_WARMUP_FRAMES = 0  # measured: a first call is no slower than the next ones
# Each codec instance (a worker process) serves 40 s, then a successor takes over: rustymimi's
# state grows ~25 KB a frame encoding and ~66 KB decoding, so a side never holds more than
# ~33 MB of it. The successor starts 3.2 s ahead (Python + a build take ~1 s here); a late one
# delays the hand-over, by up to 10 s before the frame limit (rustymimi's max_seq_len) nears.
CODEC_ROLLOVER_AFTER = 500
CODEC_FRAME_LIMIT = CODEC_ROLLOVER_AFTER + 140
CODEC_LEAD_FRAMES = 40


@dataclass(frozen=True)
class ChatSettings:
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    input_device: str | int | None = None
    output_device: str | int | None = None
    input_file: Path | np.ndarray | None = None  # the user's side from a file, not a mic
    output_file: Path | None = None  # also write Moshi's side here (files mode)
    realtime_files: bool = False  # pace file input at 80 ms frames instead of max speed
    echo_cancellation: bool = True
    listen_first: bool = False  # Moshi silent until the user has spoken (no greeting)
    latency: str = DEFAULT_PROFILE  # the audio's latency profile: low, balanced or safe
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    max_delay_ms: float = DEFAULT_MAX_DELAY_MS
    duration_s: float | None = None
    check_memory: bool = True
    download: bool = True
    session_kind: str = "chat"

    def __post_init__(self) -> None:
        # Refused here, when the settings are made: before any file is read or device opened.
        self.lag_policy  # noqa: B018  (validates max_delay_ms)
        self.latency_profile  # noqa: B018
        check_settings(
            duration_s=self.duration_s, input_file=self.input_file, output_file=self.output_file
        )

    @property
    def latency_profile(self) -> LatencyProfile:
        return latency_profile(self.latency)

    @property
    def lag_policy(self) -> LagPolicy:
        return LagPolicy(max_delay_ms=self.max_delay_ms)


@dataclass
class ChatOutcome:
    session: Path
    summary: SessionSummary | None
    loaded: LoadedModel
    interrupted: bool = False
    error: BaseException | None = None
    recording_error: str | None = None

    @property
    def stats(self) -> dict[str, Any]:
        """The summary as summary.json holds it ({} if the loop never ran)."""
        return {} if self.summary is None else self.summary.to_dict()


class Chat:
    """One conversation: `prepare()` (slow: load, warm up), then `run()`."""

    def __init__(
        self,
        settings: ChatSettings,
        events: LoopEvents | None = None,
        status: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.settings = settings
        self.events = events or LoopEvents()
        self.status = status
        self.loaded: LoadedModel | None = None
        self.engine: StreamingEngine | None = None
        self.codec: StreamingCodec | None = None
        # Fed by the loop's frames; the dashboard and the session's exports read it.
        self.metrics = MetricsCollector(MetricSources(model_memory=_model_memory))
        self.muted = False
        self._mimi: Path | None = None
        self._codebooks = 0
        self._loop: ConversationLoop | None = None
        self._stop_requested = False
        self._early_audio: Future[DuplexAudio] | None = None
        self._early_echo: Future[EchoCanceller | None] | None = None

    @property
    def files_mode(self) -> bool:
        return self.settings.input_file is not None

    @property
    def card(self) -> ModelCard | None:
        """The loaded model, as the dashboards and the summary describe it."""
        loaded = self.loaded
        if loaded is None:
            return None
        return ModelCard.from_report(loaded.report, loaded.load_seconds, loaded.memory.total)

    def prepare(self) -> LoadedModel:
        """Check the files, start the codec's workers (they build while the model loads),
        load and warm up the model, then wait for the codec."""
        s = self.settings
        require_writable_sessions()  # found now, not after a model load
        self.status("Checking the checkpoint ...")
        files = resolve(s.checkpoint, download=s.download)
        report = inspect_checkpoint(files)  # headers only, no MLX: quick
        require_valid(report)
        if files.mimi is None:
            raise CodecFileError(
                "no Mimi codec file beside the model; pass --mimi-file", path=files.model
            )
        self._mimi = files.mimi
        config = report.model.config
        self._codebooks = max(config.user_codebooks, config.dep_q)
        self._open_codec()  # its workers build (~1 s) while MLX is imported and the model loads
        try:
            from ..voice.engine import StreamingEngine
            from ..voice.loader import load
            from ..voice.loader import prepare as prepare_load

            prepared = prepare_load(files, check_memory=s.check_memory, report=report)
            self.status(f"Loading {files.label} ...")
            self.loaded = load(files, check_memory=s.check_memory, prepared=prepared)
            self.status("Warming up ...")
            self.engine = StreamingEngine(
                self.loaded.model, self.loaded.config, s.sampling, self.loaded.text_tokenizer
            )
            self.engine.warmup()
            assert self.codec is not None
            self.codec.wait_ready()
        except BaseException:
            self._close_codec()
            raise
        return self.loaded

    def _open_codec(self) -> None:
        """A codec for one conversation (each run closes its own); its workers start now and
        warm themselves up."""
        assert self._mimi is not None
        self.codec = StreamingCodec(
            self._mimi,
            codebooks=self._codebooks,
            rollover_after=CODEC_ROLLOVER_AFTER,
            frame_limit=CODEC_FRAME_LIMIT,
            lead_frames=CODEC_LEAD_FRAMES,
            start_warmup=CODEC_WARMUP_FRAMES,
            stagger=True,
            wait=False,
        )

    def _new_echo_canceller(self) -> EchoCanceller | None:
        if self.settings.echo_cancellation and not self.files_mode:
            return EchoCanceller()
        return None

    def _close_codec(self) -> None:
        codec, self.codec = self.codec, None
        if codec is not None:
            codec.close()

    def stop(self) -> None:
        """End the running conversation (from any thread); `run()` then returns as usual."""
        self._stop_requested = True  # also covers a run() that has not built its loop yet
        loop = self._loop
        if loop is not None:
            loop.request_stop()

    def set_muted(self, muted: bool) -> None:
        """Mute the microphone now and for the conversations to come."""
        self.muted = muted
        loop = self._loop
        if loop is not None:
            loop.muted = muted

    def set_listen_first(self, on: bool) -> None:
        """Listen first from the next conversation on (a running one keeps its own)."""
        self.settings = replace(self.settings, listen_first=on)

    def open_audio_early(self) -> None:
        """Start opening the devices now, on a thread, so that it overlaps loading the model
        (PulseAudio takes up to a second to get streams flowing); `run()` picks them up.
        Call `close_early_audio()` if the conversation does not happen after all."""
        if self.files_mode or self._early_audio is not None:
            return

        def open_devices() -> DuplexAudio:
            return self._devices().start()

        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="open-audio")
        self._early_audio = pool.submit(open_devices)
        # The echo canceller's library takes ~0.2 s to load: beside the model's load and
        # warm-up (which release the GIL in MLX), not after them on the way to "Listening".
        self._early_echo = pool.submit(self._new_echo_canceller)
        pool.shutdown(wait=False)

    def close_early_audio(self) -> None:
        self._early_echo = None
        early, self._early_audio = self._early_audio, None
        if early is None:
            return
        with contextlib.suppress(Exception):  # its error, if any, no longer matters
            early.result().stop()

    def _devices(self) -> DuplexAudio:
        """The devices, as they are now: no stream is open between conversations, so it is
        the moment to see devices that came or went and the system default as it is now
        (PortAudio lists them only once)."""
        s = self.settings
        rescan_devices()
        return DuplexAudio(s.input_device, s.output_device, profile=s.latency_profile)

    def run(self, on_ready: Callable[[], None] | None = None) -> ChatOutcome:
        """Open the audio, then converse; `on_ready` is called once audio is flowing."""
        if self.loaded is None:
            self.prepare()
        if self.codec is None:  # a second conversation on the same model
            self._open_codec()
            assert self.engine is not None and self.codec is not None
            self.engine.reset()
            self.codec.wait_ready()
        assert self.loaded is not None and self.engine is not None and self.codec is not None
        s, codec = self.settings, self.codec
        audio: AudioIO
        early, self._early_audio = self._early_audio, None
        if self.files_mode:
            assert s.input_file is not None
            audio = FileAudio(s.input_file, s.output_file, realtime=s.realtime_files)
        elif early is not None:
            audio = early.result()  # opened while the model loaded (or its error, now)
            audio.discard_input()  # what it heard meanwhile is not part of the conversation
        else:
            audio = self._devices()
        early_echo, self._early_echo = self._early_echo, None
        echo = early_echo.result() if early_echo is not None else self._new_echo_canceller()
        silence = None if self.files_mode else partial(self._check_silence, SilenceDetector())
        t0 = time.monotonic()
        self.metrics.reset(
            MetricSources(
                audio_counters=lambda: audio_counters(audio),
                echo_reduction_db=lambda: None if echo is None else echo.echo_reduction_db,
                audio_path=audio.describe,
                model_memory=_model_memory,
            )
        )
        if early is None:
            audio.start()
        session_dir = new_session_dir(s.session_kind)
        if on_ready is not None:
            on_ready()
        loop: ConversationLoop | None = None  # (made next, with the session that reads it)

        def stats() -> dict[str, Any]:
            assert loop is not None  # the session writes its summary only as the loop runs
            return self._summary(loop, codec).to_dict()

        session = SessionWriter(
            session_dir,
            stats,
            echo_cancelled=echo is not None,
            metrics=self.metrics,
            t0=t0,
        )
        loop = ConversationLoop(
            audio,
            codec,
            self.engine,
            echo=echo,
            policy=s.lag_policy,
            events=self.events,
            session=session,
            silence_check=silence,
            output_check=OutputCheck(str(self._mimi)).feed,
            metrics=self.metrics,
            listen_first=s.listen_first,
        )
        loop.muted = self.muted
        self._loop = loop
        if self._stop_requested:
            loop.request_stop()
        outcome = ChatOutcome(session=session_dir, summary=None, loaded=self.loaded)
        try:
            interrupts.check()  # a signal swallowed while loading stops it at its first frame
            loop.run(duration_s=s.duration_s)
        except KeyboardInterrupt:
            outcome.interrupted = True
        except Exception as e:  # reported by the caller after the session is saved
            outcome.error = e
        finally:
            loop.stop()
            audio.stop()
            codec.close()
            self.codec = None
            self._loop = None
            self._stop_requested = False
        if outcome.error is not None and isinstance(audio, DuplexAudio):
            # The streams are closed: say which device disappeared, if one did.
            outcome.error = explain_loss(outcome.error, devices_in_use(audio, s))
        outcome.summary = self._summary(loop, codec)
        outcome.recording_error = session.error
        return outcome

    def _check_silence(self, detector: SilenceDetector, mic: np.ndarray) -> str | None:
        return detector.feed(mic, muted=self.muted)  # muted silence is on purpose

    def _summary(self, loop: ConversationLoop, codec: StreamingCodec) -> SessionSummary:
        return loop.summary(model=self.card, codec=asdict(codec.stats))


def _model_memory() -> dict[str, int]:
    from ..voice.memory import memory_snapshot

    return memory_snapshot()


def devices_in_use(audio: DuplexAudio, settings: ChatSettings) -> list[InUse]:
    """The devices a conversation opened, and how they were asked for."""
    used = []
    if audio.input_device is not None:
        used.append(InUse("input", audio.input_device, settings.input_device))
    if audio.output_device is not None:
        used.append(InUse("output", audio.output_device, settings.output_device))
    return used
