"""One model file quantized on its own, from the product's parts (`quantize_folder` does it
for whole folders): what the quantization tests check, without a folder around it."""

from __future__ import annotations

import os
from pathlib import Path

from assistant.checkpoint.catalogue import CONFIG_FILE
from assistant.checkpoint.inspection import inspect_model
from assistant.checkpoint.layout import Quantization
from assistant.checkpoint.quantize import check_source, check_target, quantize_weights


def quantize_checkpoint(
    src_model_file: str | Path, dst_model_file: str | Path, quant: Quantization
) -> Path:
    """Write `src_model_file` (bf16) quantized to `quant` as `dst_model_file`; returns it. The
    architecture comes from the `config.json` beside the source, else moshiko v0.1; the source
    and destination are checked as `quantize_folder` checks them; the destination appears only
    once complete."""
    src, dst = Path(src_model_file), Path(dst_model_file)
    beside = src.parent / CONFIG_FILE
    info = check_source(inspect_model(src, beside if beside.is_file() else None))
    check_target(info, dst, quant)
    partial = dst.with_name(dst.name + ".partial")
    try:
        quantize_weights(src, partial, info.config, quant)
        os.replace(partial, dst)
    finally:
        partial.unlink(missing_ok=True)
    return dst
