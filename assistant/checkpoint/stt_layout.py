"""The exact tensors of a Kyutai STT model file (MLX naming, bfloat16), for a config.

As moshi_mlx's `Lm` holds them with no depformer (dep_q 0): the main transformer, the text
embedding and head, one embedding per Mimi codebook, the output norm and, when the config
declares them, the semantic-VAD extra heads. A test checks this against moshi_mlx's own model.
"""

from __future__ import annotations

from .inspection import MAX_PROBLEMS_LISTED, bounded, tensor_differences
from .layout import BF16, TensorSpec
from .safetensors_reader import SafetensorsHeader
from .stt_config import SttConfig


def stt_tensors(config: SttConfig) -> dict[str, TensorSpec]:
    """Name -> spec for every tensor, in writing order (sorted by name, as published)."""
    d, h = config.dim, config.hidden
    specs: list[TensorSpec] = []
    for i in range(config.num_layers):
        p = f"transformer.layers.{i}"
        specs += [
            TensorSpec(f"{p}.self_attn.in_proj.weight", (3 * d, d), BF16),
            TensorSpec(f"{p}.self_attn.out_proj.weight", (d, d), BF16),
            TensorSpec(f"{p}.gating.linear_in.weight", (2 * h, d), BF16),
            TensorSpec(f"{p}.gating.linear_out.weight", (d, h), BF16),
            TensorSpec(f"{p}.norm1.weight", (d,), BF16),
            TensorSpec(f"{p}.norm2.weight", (d,), BF16),
        ]
    specs.append(TensorSpec("text_emb.weight", (config.text_in_vocab, d), BF16))
    specs.append(TensorSpec("text_linear.weight", (config.text_card, d), BF16))
    specs.append(TensorSpec("out_norm.weight", (d,), BF16))
    specs += [
        TensorSpec(f"audio_embs.{i}.weight", (config.audio_in_vocab, d), BF16)
        for i in range(config.n_q)
    ]
    specs += [
        TensorSpec(f"extra_heads.{i}.weight", (config.extra_heads_dim, d), BF16)
        for i in range(config.extra_heads_num_heads)
    ]
    return {s.name: s for s in sorted(specs, key=lambda s: s.name)}


def stt_parameter_count(config: SttConfig) -> int:
    return sum(spec.elements for spec in stt_tensors(config).values())


def stt_layout_problems(config: SttConfig, header: SafetensorsHeader) -> list[str]:
    """Names, dtypes and shapes of the file that differ from what the config builds."""
    return bounded(tensor_differences(stt_tensors(config), header), MAX_PROBLEMS_LISTED)
