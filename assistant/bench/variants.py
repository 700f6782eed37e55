"""Which checkpoints to compare: resolve each, inspect its headers, check they are one model.

Everything here reads headers only (and downloads presets that are not cached yet), so every
variant is checked before the first one is measured. A variant that cannot be found or is
invalid is set aside with its message; variants of different architectures stop the bench.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from ..checkpoint.catalogue import find_preset, preset
from ..checkpoint.config import MoshiConfig
from ..checkpoint.inspection import ModelInfo
from ..checkpoint.resolve import CheckpointFiles, CheckpointSpec, resolve
from ..checkpoint.validate import CheckpointReport
from ..errors import AssistantError, IncompatibleVariantsError, UsageError
from ..voice.loader import prepare

DEFAULT_QUANTS = ("q4", "q8")


@dataclass(frozen=True)
class VariantRequest:
    label: str
    spec: CheckpointSpec


@dataclass(frozen=True)
class Variant:
    """A checked checkpoint, ready to load."""

    label: str
    files: CheckpointFiles
    report: CheckpointReport

    @property
    def model(self) -> ModelInfo:
        return self.report.model

    @property
    def config(self) -> MoshiConfig:
        return self.report.model.config


@dataclass(frozen=True)
class VariantFailure:
    label: str
    stage: str  # "check", "load", "measure" or "interrupted"
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"variant": self.label, "stage": self.stage, "message": self.message}


def requests_for(
    *,
    voice: str,
    quants: list[str],
    checkpoints: list[str],
    mimi_file: Path | None = None,
    text_tokenizer: Path | None = None,
) -> list[VariantRequest]:
    """`--checkpoint`s as given, else presets of `voice` for `--quant`s (default q4 and q8)."""
    if checkpoints and quants:
        raise UsageError(
            "--quant picks presets and --checkpoint names checkpoints: use one or the other "
            "(a preset can be named as --checkpoint moshiko-q8)"
        )
    if checkpoints:
        targets = [(name, _label(name)) for name in checkpoints]
    else:
        targets = [(p.name, p.name) for p in (preset(voice, q) for q in quants or DEFAULT_QUANTS)]
    out, seen = [], set()
    for target, label in targets:
        unique, n = label, 1
        while unique in seen:  # the same folder twice, or two folders with one name
            n += 1
            unique = f"{label}#{n}"
        seen.add(unique)
        spec = CheckpointSpec(
            target=target, voice=voice, mimi_file=mimi_file, text_tokenizer_file=text_tokenizer
        )
        out.append(VariantRequest(unique, spec))
    return out


def _label(target: str) -> str:
    p = find_preset(target)
    if p is not None:
        return p.name
    path = Path(target).expanduser()
    return path.name or str(path)


def check_variants(
    requests: list[VariantRequest], *, download: bool = True, check_memory: bool = True
) -> tuple[list[Variant], list[VariantFailure]]:
    """Resolve and validate every variant from its headers; failures are kept, not raised."""
    variants, failures = [], []
    for r in requests:
        try:
            files = resolve(r.spec, download=download)
            report, _ = prepare(files, check_memory=check_memory)
        except AssistantError as e:
            failures.append(VariantFailure(r.label, "check", str(e)))
            continue
        variants.append(Variant(r.label, files, report))
    return variants, failures


def require_same_architecture(variants: list[Variant]) -> None:
    """Tokens of different architectures cannot be compared: refuse, naming both."""
    if not variants:
        return
    first = variants[0]
    for other in variants[1:]:
        diffs = config_differences(first.config, other.config)
        if diffs:
            more = f"; and {len(diffs) - 4} more" if len(diffs) > 4 else ""
            shown = "; ".join(diffs[:4]) + more
            raise IncompatibleVariantsError(
                f"{first.label} ({first.model.path}) and {other.label} ({other.model.path}) are "
                f"different architectures ({shown}): only variants of one model can be compared",
                hint="compare quantizations of the same model, e.g. --quant q4 --quant q8",
            )


def config_differences(a: MoshiConfig, b: MoshiConfig) -> list[str]:
    return [
        f"{f.name} {getattr(a, f.name)} vs {getattr(b, f.name)}"
        for f in fields(MoshiConfig)
        if getattr(a, f.name) != getattr(b, f.name)
    ]


def reference_order(variants: list[Variant]) -> list[Variant]:
    """Highest bits per weight first: the first one measured successfully is the reference."""
    return sorted(variants, key=lambda v: -v.model.bits_per_weight)  # stable for ties
