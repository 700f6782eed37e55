"""Kyutai's speech-to-text model (`kyutai/stt-1b-en_fr-mlx`) in its published `config.json`.

The STT model is Moshi's main transformer without a depformer: 32 Mimi codebooks in, one text
token out per 80 ms frame, the text stream `audio_delay_seconds` behind the audio. Its repo
ships a moshi-format `config.json` (with `stt_config`, `mimi_name`, `tokenizer_name`) that
`moshi_mlx.models.LmConfig.from_config_dict` reads; here it is parsed strictly (every key
moshi_mlx reads must be there, values in range, file names plain) before anything is built.

What is published, as far as public code shows (kyutai-labs/delayed-streams-modeling, moshi,
moshi-swift's `asr1b`, moshi-server configs): dim 2048, 16 heads, 16 layers, hidden_scale
4.125, context 750, max_period 100000, n_q 32, dep_q 0, delays all 0, card 2048, text_card
8000, stt_config {audio_delay_seconds 0.5, audio_silence_prefix_seconds 0.0}, bf16 only. The
MLX repo's weights carry no semantic-VAD heads (Kyutai's own scripts use the candle repo for
those), so the preset has none; a config that declares `extra_heads_num_heads` gets them
checked like every other tensor.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import read_regular
from ..strict_json import load_strict
from .config import LIMITS, MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, mlp_hidden

CONFIG_FILE = "config.json"
DEFAULT_MODEL_NAME = "model.safetensors"  # moshi_mlx's default when `moshi_name` is absent
MAX_DELAY_SECONDS = 20.0
MAX_EXTRA_HEADS = 16

# Keys moshi_mlx's `LmConfig.from_config_dict` reads without a default: a config lacking one
# would crash the reference loader, so it is refused here with the key's name.
_REQUIRED = (
    "dim",
    "num_heads",
    "num_layers",
    "hidden_scale",
    "context",
    "max_period",
    "text_card",
    "card",
    "n_q",
    "dep_q",
    "delays",
    "causal",
    "layer_scale",
    "positional_embedding",
    "depformer_dim",
    "depformer_num_heads",
    "depformer_num_layers",
    "depformer_dim_feedforward",
    "depformer_pos_emb",
    "stt_config",
    "mimi_name",
    "tokenizer_name",
)
# Keys that change nothing we build or stream.
_IGNORED = {
    "model_id",
    "lm_gen_config",
    "model_type",
    "existing_text_end_padding_id",
    "depformer_multi_linear",
    "depformer_weights_per_step",
    "depformer_causal",
    "depformer_context",
    "depformer_max_period",
    "depformer_gating",
    "depformer_norm",
    "depformer_layer_scale",
    "depformer_low_rank_embeddings",
    "depformer_weights_per_step_schedule",
    "gating",
    "norm",
    "conditioners",
    "cross_attention",
    "demux_second_stream",
    "fuser",
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SttConfig:
    """What fixes the STT model's tensors and how its streams line up."""

    dim: int
    num_heads: int
    num_layers: int
    hidden_scale: float
    context: int
    max_period: float
    text_card: int
    card: int
    n_q: int
    audio_delay_seconds: float
    audio_silence_prefix_seconds: float
    mimi_name: str
    tokenizer_name: str
    moshi_name: str = DEFAULT_MODEL_NAME
    existing_text_padding_id: int = 3
    extra_heads_num_heads: int = 0
    extra_heads_dim: int = 6

    @property
    def hidden(self) -> int:
        """The gated MLP's width as moshi_mlx builds it (it derives it from 4 * dim)."""
        return mlp_hidden(self.dim, 4 * self.dim)

    @property
    def text_in_vocab(self) -> int:
        return self.text_card + 1  # plus the initial token

    @property
    def audio_in_vocab(self) -> int:
        return self.card + 1  # plus the padding token

    # --- parsing ---------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> SttConfig:
        return cls.from_dict(read_config_dict(path), source=path)

    @classmethod
    def from_dict(cls, data: Any, *, source: str | Path = "config") -> SttConfig:
        if not isinstance(data, dict):
            raise ConfigError("expected a JSON object", path=source)
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ConfigError(f"missing keys: {', '.join(missing)}", path=source)
        known = (
            set(_REQUIRED)
            | _IGNORED
            | {
                "moshi_name",
                "existing_text_padding_id",
                "extra_heads_num_heads",
                "extra_heads_dim",
            }
        )
        unknown = sorted(set(data) - known)
        if unknown:
            # The published config.json was not seen here (no hub access): a key it has that
            # we do not know is logged and left alone (as moshi_mlx does), not a refusal. Every
            # key the architecture depends on is checked above and below.
            log.warning("%s: keys not used by the assistant: %s", source, ", ".join(unknown))
        if data.get("model_type", "stt") != "stt":
            raise ConfigError(
                f"model_type is {_shown(data['model_type'])}, not 'stt': not a speech-to-text "
                "model",
                path=source,
            )
        _reject_unsupported(data, source)
        stt = data["stt_config"]
        if not isinstance(stt, dict):
            raise ConfigError("'stt_config' must be an object", path=source)
        config = cls(
            dim=_int(data, "dim", source),
            num_heads=_int(data, "num_heads", source),
            num_layers=_int(data, "num_layers", source),
            hidden_scale=_number(data, "hidden_scale", source),
            context=_int(data, "context", source),
            max_period=_number(data, "max_period", source),
            text_card=_int(data, "text_card", source),
            card=_int(data, "card", source),
            n_q=_int(data, "n_q", source),
            audio_delay_seconds=_number(stt, "audio_delay_seconds", source, default=0.0),
            audio_silence_prefix_seconds=_number(
                stt, "audio_silence_prefix_seconds", source, default=0.0
            ),
            mimi_name=_file_name(data, "mimi_name", source),
            tokenizer_name=_file_name(data, "tokenizer_name", source),
            moshi_name=_file_name(data, "moshi_name", source, default=DEFAULT_MODEL_NAME),
            existing_text_padding_id=_int(data, "existing_text_padding_id", source, default=3),
            extra_heads_num_heads=_int(data, "extra_heads_num_heads", source, default=0),
            extra_heads_dim=_int(data, "extra_heads_dim", source, default=6),
        )
        if _int(data, "dep_q", source) != 0:
            raise ConfigError(
                f"dep_q is {data['dep_q']}: a speech-to-text model generates no audio (dep_q 0)",
                path=source,
            )
        delays = data["delays"]
        if not isinstance(delays, list) or not all(_is_int(d) for d in delays):
            raise ConfigError("'delays' must be a list of integers", path=source)
        if len(delays) != config.n_q + 1 or any(delays):
            raise ConfigError(
                f"'delays' must be {config.n_q + 1} zeros (the text stream's delay is "
                "stt_config.audio_delay_seconds)",
                path=source,
            )
        config.check(source)
        return config

    def check(self, source: str | Path = "config") -> None:
        ranges = [
            f"'{name}' must be {LIMITS[name][0]}..{LIMITS[name][1]:,}, got {getattr(self, name):,}"
            for name in ("dim", "num_heads", "num_layers", "context", "text_card", "card", "n_q")
            if not LIMITS[name][0] <= getattr(self, name) <= LIMITS[name][1]
        ]
        if not 1 <= self.max_period <= LIMITS["max_period"][1]:
            ranges.append(f"'max_period' must be 1..{LIMITS['max_period'][1]:,}")
        for name in ("audio_delay_seconds", "audio_silence_prefix_seconds"):
            if not 0 <= getattr(self, name) <= MAX_DELAY_SECONDS:
                ranges.append(f"stt_config '{name}' must be 0..{MAX_DELAY_SECONDS:g} s")
        if not 0 <= self.extra_heads_num_heads <= MAX_EXTRA_HEADS:
            ranges.append(f"'extra_heads_num_heads' must be 0..{MAX_EXTRA_HEADS}")
        if not 1 <= self.extra_heads_dim <= 1024:
            ranges.append("'extra_heads_dim' must be 1..1024")
        if ranges:
            raise ConfigError("; ".join(ranges[:3]), path=source)
        problems = []
        if self.n_q > 32:
            problems.append(f"n_q {self.n_q}: Mimi has 32 codebooks")
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            problems.append(
                f"dim {self.dim} is not num_heads {self.num_heads} times an even head size"
            )
        if not 0 <= self.existing_text_padding_id < self.text_card:
            problems.append(
                f"'existing_text_padding_id' {self.existing_text_padding_id} is outside the "
                f"text vocabulary (0..{self.text_card - 1})"
            )
        # moshi_mlx sizes the MLP from 4 * dim whatever hidden_scale says; PyTorch moshi from
        # hidden_scale. They agree for 4.125 (the published value); refuse a config on which
        # the two runtimes would build different models.
        if mlp_hidden(self.dim, int(self.hidden_scale * self.dim)) != self.hidden:
            problems.append(
                f"hidden_scale {self.hidden_scale:g} gives an MLP width moshi_mlx does not build "
                f"(it uses {self.hidden} for dim {self.dim}; 4.125 is published)"
            )
        if problems:
            raise ConfigError("; ".join(problems), path=source)

    # --- writing ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The config in the published key order and format."""
        data: dict[str, Any] = {
            "card": self.card,
            "n_q": self.n_q,
            "dep_q": 0,
            "delays": [0] * (self.n_q + 1),
            "dim": self.dim,
            "text_card": self.text_card,
            "existing_text_padding_id": self.existing_text_padding_id,
            "num_heads": self.num_heads,
            "num_layers": self.num_layers,
            "hidden_scale": self.hidden_scale,
            "causal": True,
            "layer_scale": None,
            "context": self.context,
            "max_period": self.max_period,
            "gating": "silu",
            "norm": "rms_norm_f32",
            "positional_embedding": "rope",
            "depformer_dim": 1024,
            "depformer_num_heads": 16,
            "depformer_num_layers": 6,
            "depformer_dim_feedforward": None,
            "depformer_multi_linear": True,
            "depformer_pos_emb": "none",
            "depformer_weights_per_step": True,
            "conditioners": {},
            "cross_attention": False,
        }
        if self.extra_heads_num_heads:
            data["extra_heads_num_heads"] = self.extra_heads_num_heads
            data["extra_heads_dim"] = self.extra_heads_dim
        data["lm_gen_config"] = {"temp": 0.0, "temp_text": 0.0, "top_k": 250, "top_k_text": 50}
        data["stt_config"] = {
            "audio_delay_seconds": self.audio_delay_seconds,
            "audio_silence_prefix_seconds": self.audio_silence_prefix_seconds,
        }
        data["model_type"] = "stt"
        data["mimi_name"] = self.mimi_name
        data["tokenizer_name"] = self.tokenizer_name
        if self.moshi_name != DEFAULT_MODEL_NAME:
            data["moshi_name"] = self.moshi_name
        return data

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def read_config_dict(path: str | Path) -> dict[str, Any]:
    """config.json as a dict, read strictly (regular file, bounded size and depth, finite)."""
    path = Path(path)
    raw = read_regular(path, MAX_CONFIG_BYTES, ConfigError)
    data = load_strict(
        raw, max_depth=MAX_CONFIG_DEPTH, error=ConfigError, path=path, what="not a valid config"
    )
    if not isinstance(data, dict):
        raise ConfigError("expected a JSON object", path=path)
    return data


def _reject_unsupported(data: dict[str, Any], source: str | Path) -> None:
    checks = [
        (data.get("layer_scale") is not None, "layer scale"),
        (bool(data.get("cross_attention")), "cross-attention"),
        (bool(data.get("conditioners")), "conditioners"),
        (bool(data.get("demux_second_stream")), "a demuxed second text stream"),
        (data.get("gating", "silu") != "silu", f"gating {_shown(data.get('gating'))}"),
        (not str(data.get("norm", "rms_norm")).startswith("rms_norm"), "a norm other than RMS"),
        (data.get("positional_embedding") != "rope", "a positional embedding other than rope"),
        (data.get("causal") is not True, "a non-causal transformer"),
    ]
    for bad, what in checks:
        if bad:
            raise ConfigError(f"uses {what}, which this runtime does not support", path=source)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(data: dict[str, Any], key: str, source: str | Path, default: int | None = None) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"'{key}' must be an integer, got {_shown(value)}", path=source)
    return value


def _number(
    data: dict[str, Any], key: str, source: str | Path, default: float | None = None
) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"'{key}' must be a finite number, got {_shown(value)}", path=source)
    return value


def _file_name(
    data: dict[str, Any], key: str, source: str | Path, default: str | None = None
) -> str:
    """A file the config names, which must lie in the config's folder: a plain name."""
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"'{key}' must be a file name, got {_shown(value)}", path=source)
    if "/" in value or "\\" in value or value in (".", "..") or "\0" in value:
        raise ConfigError(
            f"'{key}' must name a file in the checkpoint's folder, got {_shown(value)}",
            path=source,
        )
    return value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- presets -------------------------------------------------------------------------------

STT_REPO = "kyutai/stt-1b-en_fr-mlx"  # where it is published (the hub)
STT_MIMI_FILE = "mimi-pytorch-e351c8d8@125.safetensors"
STT_TOKENIZER_FILE = "tokenizer_en_fr_audio_8000.model"

STT_1B_EN_FR = SttConfig(
    dim=2048,
    num_heads=16,
    num_layers=16,
    hidden_scale=4.125,
    context=750,
    max_period=100000.0,
    text_card=8000,
    card=2048,
    n_q=32,
    audio_delay_seconds=0.5,
    audio_silence_prefix_seconds=0.0,
    mimi_name=STT_MIMI_FILE,
    tokenizer_name=STT_TOKENIZER_FILE,
)

# The same structure (32 codebooks, the same 8000-piece tokenizer and delays) at toy widths:
# a step costs about a millisecond here, so the codec sets the pace of tests and the demo.
STT_TINY = replace(STT_1B_EN_FR, dim=64, num_heads=2, num_layers=2)

STT_CONFIGS: dict[str, SttConfig] = {"stt-1b-en_fr": STT_1B_EN_FR, "tiny": STT_TINY}
