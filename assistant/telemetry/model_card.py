"""The loaded checkpoint as the dashboard and the session summary describe it."""

from __future__ import annotations

from dataclasses import dataclass

from ..checkpoint.validate import CheckpointReport


@dataclass(frozen=True)
class ModelCard:
    """The loaded checkpoint, as the dashboard's header shows it."""

    label: str
    voice: str
    quantization: str  # q4, q8 or bf16
    bits: int
    group_size: int | None
    bits_per_weight: float
    file_size: int
    parameters: int
    load_seconds: float
    memory_estimate: int  # bytes: weights, KV cache, codec and margin

    @classmethod
    def from_report(
        cls, report: CheckpointReport, load_seconds: float, memory_estimate: int
    ) -> ModelCard:
        """The card of a checkpoint loaded in `load_seconds`, estimated to need
        `memory_estimate` bytes."""
        info = report.model
        preset = report.files.preset
        q = info.quantization
        return cls(
            # A folder's name says more than "model.safetensors".
            label=preset.name if preset else f"{info.path.parent.name}/{info.path.name}",
            voice=preset.voice if preset else "custom",
            quantization=info.quant_label,
            bits=q.bits if q else 16,
            group_size=q.group_size if q else None,
            bits_per_weight=info.bits_per_weight,
            file_size=info.file_size,
            parameters=info.parameter_count,
            load_seconds=load_seconds,
            memory_estimate=memory_estimate,
        )

    def line(self) -> str:
        group = f", group {self.group_size}" if self.group_size else ""
        return (
            f"{self.voice} · {self.quantization} ({self.bits} bits{group}) · "
            f"{self.bits_per_weight:.2f} bits/weight · {format_bytes(self.file_size)} · "
            f"{self.parameters / 1e9:.2f} B params · loaded in {self.load_seconds:.1f} s · "
            f"needs ~{format_bytes(self.memory_estimate)}"
        )


def format_bytes(n: int) -> str:
    """Decimal units, as macOS and the model hub show file sizes."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
