"""What a bench run measured: settings, one result per variant, failures. Data only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..checkpoint.inspection import ModelInfo
from ..frames import FRAME_MS
from ..voice.sampling import SamplingConfig
from .fidelity import Fidelity, Recording
from .listening import Listening
from .speech import UserSpeech
from .system import MachineInfo
from .timing import Timing
from .variants import VariantFailure


@dataclass(frozen=True)
class BenchSettings:
    steps: int = 200  # timed steps, after the warm-up
    warmup: int = 10  # untimed steps first (compilation, allocation)
    sampling: SamplingConfig = field(default_factory=SamplingConfig.greedy)
    check_memory: bool = True

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps

    @property
    def chat_sampling(self) -> SamplingConfig | None:
        """The sampling `assistant chat` uses by default (same seed), when this run's differs:
        steps are then also timed with it, as a conversation would run."""
        chat = SamplingConfig(seed=self.sampling.seed)
        return None if same_sampling(chat, self.sampling) else chat

    def to_dict(self) -> dict[str, Any]:
        s = self.sampling
        return {
            "steps": self.steps,
            "warmup": self.warmup,
            "sampling": {
                "greedy": s.is_greedy,
                "text_temperature": s.text_temperature,
                "text_top_k": s.text_top_k,
                "audio_temperature": s.audio_temperature,
                "audio_top_k": s.audio_top_k,
                "seed": s.seed,
            },
            "also_timed_sampled_as_chat": self.chat_sampling is not None,
        }


def same_sampling(a: SamplingConfig, b: SamplingConfig) -> bool:
    """Same tokens drawn the same way (seeds aside): greedy ignores the top-k."""
    if a.is_greedy or b.is_greedy:
        return a.is_greedy and b.is_greedy
    return (a.text_temperature, a.text_top_k, a.audio_temperature, a.audio_top_k) == (
        b.text_temperature,
        b.text_top_k,
        b.audio_temperature,
        b.audio_top_k,
    )


def sampling_label(s: SamplingConfig) -> str:
    if s.is_greedy:
        return "greedy"
    return (
        f"sampled (text T {s.text_temperature} top-k {s.text_top_k}, "
        f"audio T {s.audio_temperature} top-k {s.audio_top_k})"
    )


@dataclass
class VariantResult:
    label: str
    model: ModelInfo
    cold_load_s: float
    cold_load_kind: str  # whether the OS page cache was evicted before the cold load
    cold_load_doubt: str | None  # why the cold load may have come from a cache, if it may
    warm_load_s: float
    mlx_before: int  # bytes MLX held when the warm load began (nothing, normally)
    mlx_active_after_load: int  # bytes: the weights as MLX holds them
    mlx_peak: int  # bytes, MLX's peak over the warm load and the whole conversation
    rss_peak: int  # bytes, the process's resident set (Python, Mimi and the model)
    rss_before: int  # bytes, the resident set when the warm load began
    step_ms: list[float]  # every step, warm-up first, with the run's sampling
    warmup: int
    recording: Recording
    chat_step_ms: list[float] | None = None  # the same, sampled as a chat (when that differs)
    decode: Timing | None = None  # Mimi decode of this variant's own codes, per frame
    audio_file: Path | None = None
    fidelity: Fidelity | None = None
    listening: Listening | None = None  # speech recognition on its audio (bench --listen)

    @property
    def timed_ms(self) -> list[float]:
        return self.step_ms[self.warmup :]

    @property
    def steps(self) -> Timing:
        return Timing.of(self.timed_ms)

    @property
    def chat_steps(self) -> Timing | None:
        return None if self.chat_step_ms is None else Timing.of(self.chat_step_ms[self.warmup :])

    @property
    def real_time_factor(self) -> float:
        """Mean step time over the 80 ms a frame lasts: below 1 keeps up with speech."""
        return self.steps.mean / FRAME_MS

    @property
    def mlx_increase(self) -> int:
        """What the variant made MLX hold at its peak: weights, ring, working buffers."""
        return max(self.mlx_peak - self.mlx_before, 0)

    @property
    def rss_increase(self) -> int:
        """How far the variant raised the process's resident set above where it started."""
        return max(self.rss_peak - self.rss_before, 0)

    def to_dict(self) -> dict[str, Any]:
        m, q = self.model, self.model.quantization
        return {
            "label": self.label,
            "model_file": str(m.path),
            "quantization": m.quant_label,
            "bits": q.bits if q else 16,
            "group_size": q.group_size if q else None,
            "bits_per_weight": round(m.bits_per_weight, 4),
            "parameters": m.parameter_count,
            "size_on_disk_bytes": m.file_size,
            "load": {
                "cold_s": round(self.cold_load_s, 4),
                "cold_kind": self.cold_load_kind,
                "cold_reliable": self.cold_load_doubt is None,
                "cold_doubt": self.cold_load_doubt,
                "warm_s": round(self.warm_load_s, 4),
            },
            "memory": {
                "mlx_increase_bytes": self.mlx_increase,
                "process_rss_increase_bytes": self.rss_increase,
                "mlx_before_load_bytes": self.mlx_before,
                "mlx_active_after_load_bytes": self.mlx_active_after_load,
                "mlx_peak_bytes": self.mlx_peak,
                "process_rss_peak_bytes": self.rss_peak,
                "process_rss_before_load_bytes": self.rss_before,
            },
            "step_ms": self.steps.to_dict(),
            "real_time_factor": round(self.real_time_factor, 4),
            "step_ms_all": [round(t, 3) for t in self.step_ms],
            "step_ms_sampled_as_chat": self.chat_steps.to_dict() if self.chat_steps else None,
            "step_ms_sampled_as_chat_all": (
                None if self.chat_step_ms is None else [round(t, 3) for t in self.chat_step_ms]
            ),
            "mimi_decode_ms_per_frame": self.decode.to_dict() if self.decode else None,
            "audio_file": self.audio_file.name if self.audio_file else None,
            "fidelity": self.fidelity.to_dict() if self.fidelity else None,
            "listening": self.listening.to_dict() if self.listening else None,
        }


@dataclass
class BenchRun:
    """Everything the report shows; filled in as variants finish."""

    started: datetime
    folder: Path
    machine: MachineInfo
    settings: BenchSettings
    speech: UserSpeech
    labels: list[str]  # every requested variant, in the order given
    results: dict[str, VariantResult] = field(default_factory=dict)
    failures: list[VariantFailure] = field(default_factory=list)
    reference: str | None = None
    finished: bool = False
    listening_note: str | None = None  # why the variants' speech was not transcribed

    @property
    def ordered(self) -> list[VariantResult]:
        return [self.results[label] for label in self.labels if label in self.results]

    @property
    def complete(self) -> bool:
        return self.finished and not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(timespec="seconds"),
            "complete": self.complete,
            "machine": self.machine.to_dict(),
            "settings": self.settings.to_dict(),
            "input": self.speech.to_dict()
            | {"looped": self.settings.total_steps > self.speech.frames},
            "reference": self.reference,
            "variants_requested": self.labels,
            "variants": [r.to_dict() for r in self.ordered],
            "errors": [f.to_dict() for f in self.failures],
            "listening_note": self.listening_note,
        }
