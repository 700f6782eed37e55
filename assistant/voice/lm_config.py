"""A checkpoint's `MoshiConfig` as moshi_mlx's `LmConfig`: the one bridge from the MLX-free
checkpoint format to the runtime's modules."""

from __future__ import annotations

from moshi_mlx.models.lm import DepFormerConfig, LmConfig
from moshi_mlx.modules.transformer import TransformerConfig

from ..checkpoint.config import MoshiConfig


def to_lm_config(config: MoshiConfig) -> LmConfig:
    """moshi_mlx's LmConfig for this architecture (built field by field, nothing guessed)."""
    main = transformer_config(
        config.dim,
        config.num_heads,
        config.num_layers,
        config.main_ff,
        config.context,
        config.max_period,
    )
    main.positional_embedding = config.positional_embedding
    dep = transformer_config(
        config.depformer_dim,
        config.depformer_num_heads,
        config.depformer_num_layers,
        config.depformer_dim_feedforward,
        config.depformer_context,
        config.depformer_max_period,
    )
    dep.positional_embedding = config.depformer_pos_emb
    return LmConfig(
        transformer=main,
        depformer=DepFormerConfig(transformer=dep, num_slices=config.dep_q),
        text_in_vocab_size=config.text_in_vocab,
        text_out_vocab_size=config.text_card,
        audio_vocab_size=config.audio_in_vocab,
        audio_codebooks=config.n_q,
        audio_delays=list(config.delays[1:]),
        conditioners={},
    )


def transformer_config(
    d: int, heads: int, layers: int, ff: int, context: int, period: int
) -> TransformerConfig:
    """moshi_mlx's transformer recipe for Moshi: RoPE, gated SiLU MLP, RMSNorm, no biases."""
    return TransformerConfig(
        d_model=d,
        num_heads=heads,
        num_layers=layers,
        dim_feedforward=ff,
        causal=True,
        norm_first=True,
        bias_ff=False,
        bias_attn=False,
        layer_scale=None,
        context=context,
        max_period=period,
        use_conv_block=False,
        use_conv_bias=True,
        cross_attention=False,
        gating=True,
        norm="rms_norm",
        positional_embedding="rope",
        conv_layout=False,
        conv_kernel_size=3,
        kv_repeat=1,
        max_seq_len=4096,
    )
