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
        }


@dataclass
class VariantResult:
    label: str
    model: ModelInfo
    cold_load_s: float
    cold_load_kind: str  # whether the OS page cache was evicted before the cold load
    warm_load_s: float
    mlx_active_after_load: int  # bytes: the weights as MLX holds them
    mlx_peak: int  # bytes, MLX's peak over the warm load and the whole conversation
    rss_peak: int  # bytes, the process's resident set (Python, Mimi and the model)
    rss_before: int  # bytes, the resident set when the warm load began
    step_ms: list[float]  # every step, warm-up first
    warmup: int
    recording: Recording
    decode: Timing | None = None  # Mimi decode of this variant's own codes, per frame
    audio_file: Path | None = None
    fidelity: Fidelity | None = None

    @property
    def timed_ms(self) -> list[float]:
        return self.step_ms[self.warmup :]

    @property
    def steps(self) -> Timing:
        return Timing.of(self.timed_ms)

    @property
    def real_time_factor(self) -> float:
        """Mean step time over the 80 ms a frame lasts: below 1 keeps up with speech."""
        return self.steps.mean / FRAME_MS

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
                "warm_s": round(self.warm_load_s, 4),
            },
            "memory": {
                "mlx_active_after_load_bytes": self.mlx_active_after_load,
                "mlx_peak_bytes": self.mlx_peak,
                "process_rss_peak_bytes": self.rss_peak,
                "process_rss_before_load_bytes": self.rss_before,
            },
            "step_ms": self.steps.to_dict(),
            "real_time_factor": round(self.real_time_factor, 4),
            "step_ms_all": [round(t, 3) for t in self.step_ms],
            "mimi_decode_ms_per_frame": self.decode.to_dict() if self.decode else None,
            "audio_file": self.audio_file.name if self.audio_file else None,
            "fidelity": self.fidelity.to_dict() if self.fidelity else None,
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
        }
