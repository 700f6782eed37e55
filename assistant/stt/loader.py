"""Load a validated STT checkpoint onto MLX.

Order, as for Moshi: every header checked against config.json (one line for the first
problem), the memory verdict, the Mimi codec's values; only then the model is built by
moshi_mlx from the config exactly as its `run_inference` does, loaded strictly and evaluated
(MLX is lazy), and its weights checked for NaN, infinity and all-zeros.

One change to the reference: moshi_mlx gives the main transformer a rotating KV cache of 4096
slots whatever the context, and from step 4096 (5 min 28 s) its window stops following the
latest steps. The cache here holds exactly `context` slots, so the attention always covers the
last `context` steps, the current one included, for audio of any length: PyTorch moshi's
window, and the one `voice/kv_cache.py` gives Moshi. (moshi_mlx's trimming keeps one key more
once `context` steps have passed; before that, 60 s for this model, the two are the same.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlx.core as mx

from ..checkpoint.safetensors_reader import read_header
from ..checkpoint.scanned import already_scanned, remember_scanned
from ..checkpoint.stt_validate import SttReport, inspect_stt, require_valid_stt, stt_files
from ..checkpoint.values import ALL_ZERO_MESSAGE, non_finite_message, require_sane_values
from ..errors import CheckpointError, CodecFileError
from ..files import require_regular
from ..voice.loader import check_parameters
from ..voice.memory import (
    WORKING_MARGIN,
    MemoryEstimate,
    machine_memory,
    memory_warning,
    require_fit,
)

if TYPE_CHECKING:
    from moshi_mlx.models import Lm

log = logging.getLogger(__name__)

# Not one of moshiko's quantizations: the memory advice is the generic one (bf16 only).
QUANT_LABEL = "stt-bf16"


@dataclass
class LoadedStt:
    model: Lm
    report: SttReport
    memory: MemoryEstimate
    load_seconds: float


def stt_memory(report: SttReport) -> MemoryEstimate:
    """Weights, the KV cache at full context (bf16 keys and values), one codec instance."""
    c = report.config
    return MemoryEstimate(
        weights=report.model.file_size,
        kv_cache=2 * c.num_layers * c.context * c.dim * 2,
        codec_each=report.codec.file_size,
        margin=WORKING_MARGIN,
        machine=machine_memory(),
        codec_instances=1,
    )


def prepare_stt(
    folder: str | Path, *, check_memory: bool = True
) -> tuple[SttReport, MemoryEstimate]:
    """Everything decided before loading: the headers, the memory verdict, the codec's values."""
    report = inspect_stt(stt_files(folder))
    require_valid_stt(report)
    if not already_scanned(report.codec.path):
        require_sane_values(read_header(report.codec.path), CodecFileError)
        remember_scanned(report.codec.path)
    est = stt_memory(report)
    label = f"{report.files.folder} (speech to text)"
    if check_memory:
        require_fit(est, label, QUANT_LABEL)
    warning = memory_warning(est, label, QUANT_LABEL)
    if warning:
        log.warning(warning)
    return report, est


def build_stt_model(report: SttReport) -> Lm:
    """moshi_mlx's model for this config, in bf16, with a KV cache of exactly `context`."""
    from moshi_mlx import models

    cfg = models.LmConfig.from_config_dict(report.raw_config)
    cfg.transformer.max_seq_len = cfg.transformer.context
    model = models.Lm(cfg)
    model.set_dtype(mx.bfloat16)
    return model


def load_stt(folder: str | Path, *, check_memory: bool = True) -> LoadedStt:
    report, est = prepare_stt(folder, check_memory=check_memory)
    model = build_stt_model(report)
    path = report.files.model
    require_regular(path, CheckpointError)  # MLX opens it itself: no FIFO, no device
    started = time.perf_counter()
    try:
        model.load_weights(str(path), strict=True)
        mx.eval(model.parameters())
    except (ValueError, RuntimeError, OSError) as e:
        raise CheckpointError(f"loading the weights failed: {e}", path=path) from None
    load_seconds = time.perf_counter() - started
    scan = check_parameters(model)
    if scan.non_finite:
        raise CheckpointError(non_finite_message(scan.non_finite), path=path)
    if scan.all_zero:
        raise CheckpointError(ALL_ZERO_MESSAGE, path=path)
    log.info("speech to text: %s loaded in %.2f s", report.files.folder, load_seconds)
    return LoadedStt(model, report, est, load_seconds)
