"""Build moshi_mlx's Lm for a validated config, in the dtype and quantization of the weights."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from moshi_mlx.models import Lm

from ..checkpoint.config import MoshiConfig
from ..checkpoint.layout import Quantization
from .lm_config import to_lm_config


def build_model(config: MoshiConfig, quant: Quantization | None) -> Lm:
    """An Lm with the checkpoint's exact parameter layout (weights still random and lazy).

    Mirrors how the published files were made: bf16 everywhere, then MLX affine quantization
    of every linear and embedding at the detected bits and group size.
    """
    model = Lm(to_lm_config(config))
    model.set_dtype(mx.bfloat16)
    if quant is not None:
        nn.quantize(model, bits=quant.bits, group_size=quant.group_size)
    return model
