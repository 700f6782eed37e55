"""Load a validated checkpoint onto MLX: nothing guessed, nothing lazy left behind.

Order matters: inspect every header and refuse on any mismatch, estimate memory and refuse
what cannot fit, and only then build the model at the detected quantization, load strictly
and force evaluation (MLX loads lazily, so a load time measured before `mx.eval` is a lie).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlx.core as mx

from ..checkpoint.config import MoshiConfig
from ..checkpoint.layout import Quantization
from ..checkpoint.resolve import CheckpointFiles
from ..checkpoint.validate import CheckpointReport, inspect_checkpoint, require_valid
from ..errors import CheckpointError
from .memory import (
    DEFAULT_CACHE_LIMIT,
    MemoryEstimate,
    estimate,
    memory_warning,
    require_fit,
    set_cache_limit,
)
from .model import build_model

if TYPE_CHECKING:
    import sentencepiece
    from moshi_mlx.models import Lm

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Lm
    report: CheckpointReport
    memory: MemoryEstimate
    load_seconds: float
    text_tokenizer: sentencepiece.SentencePieceProcessor | None

    @property
    def config(self) -> MoshiConfig:
        return self.report.model.config

    @property
    def quantization(self) -> Quantization | None:
        return self.report.model.quantization


def prepare(
    files: CheckpointFiles, *, check_memory: bool = True
) -> tuple[CheckpointReport, MemoryEstimate]:
    """Everything that can be decided from headers: validation and the memory verdict."""
    report = inspect_checkpoint(files)
    require_valid(report)
    codec = report.codec.file_size if report.codec else 0
    est = estimate(report.model.config, report.model.file_size, codec)
    if check_memory:
        require_fit(est, report.files.label, report.model.quant_label)
    warning = memory_warning(est, report.files.label, report.model.quant_label)
    if warning:
        log.warning(warning)
    return report, est


def load(
    files: CheckpointFiles,
    *,
    check_memory: bool = True,
    cache_limit: int = DEFAULT_CACHE_LIMIT,
    prepared: tuple[CheckpointReport, MemoryEstimate] | None = None,
) -> LoadedModel:
    """`prepared`: what `prepare(files)` returned, when the caller already ran it."""
    report, est = prepared or prepare(files, check_memory=check_memory)
    set_cache_limit(cache_limit)
    model = build_model(report.model.config, report.model.quantization)
    started = time.perf_counter()
    try:
        model.load_weights(str(files.model), strict=True)
        mx.eval(model.parameters())
    except (ValueError, RuntimeError, OSError) as e:
        # Headers were already checked, so this is damage inside the data (or the disk).
        raise CheckpointError(f"loading the weights failed: {e}", path=files.model) from None
    load_seconds = time.perf_counter() - started
    return LoadedModel(
        model=model,
        report=report,
        memory=est,
        load_seconds=load_seconds,
        text_tokenizer=_text_tokenizer(files),
    )


def _text_tokenizer(files: CheckpointFiles) -> sentencepiece.SentencePieceProcessor | None:
    if files.text_tokenizer is None:
        return None
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor()
    sp.Load(str(files.text_tokenizer))
    return sp
