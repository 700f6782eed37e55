"""Moshi's architecture, in the JSON format moshi itself uses for `config.json`.

The published MLX repos ship no config, so the built-in `moshiko v0.1` preset stands in for one;
either way the config is checked against the tensors before anything is built (see
`inspection`). No MLX here: `voice.lm_config` translates a config into moshi_mlx's.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import read_regular
from ..strict_json import load_strict

# moshi's configs are a few hundred bytes, a few levels deep (lm_gen_config, conditioners).
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 16

# What any model this runtime could ever hold stays within (moshiko's values in brackets).
# Checked before anything is built or even listed, so an absurd config is refused at once.
LIMITS: dict[str, tuple[int, int]] = {
    "dim": (1, 65_536),  # [4096]
    "num_heads": (1, 1024),  # [32]
    "num_layers": (1, 256),  # [32]
    # [3000] steps of 80 ms; what a context costs is the memory check's to say (it knows RAM)
    "context": (1, 2**31 - 1),
    "max_period": (1, 10**9),  # [10000] (RoPE base)
    "text_card": (1, 1 << 20),  # [32000]
    "card": (1, 65_536),  # [2048]
    "n_q": (1, 64),  # [16]
    "dep_q": (1, 32),  # [8]: Mimi has 32 codebooks
    "depformer_dim": (1, 65_536),  # [1024]
    "depformer_dim_feedforward": (1, 1 << 20),  # [4224]
    "depformer_num_heads": (1, 1024),  # [16]
    "depformer_num_layers": (1, 64),  # [6]
    "depformer_context": (1, 2**31 - 1),  # [8]
    "depformer_max_period": (1, 10**9),  # [10000]
}
MAX_HIDDEN_SCALE = 64.0  # [4.125]
MAX_DELAY = 250  # frames (20 s) [1]

# Keys moshi writes into its configs that do not change the tensors we load.
_IGNORED_KEYS = {
    "model_type",
    "lm_gen_config",
    "mimi_name",
    "moshi_name",
    "tokenizer_name",
    "depformer_multi_linear",
    "depformer_weights_per_step",
    "depformer_causal",
    "depformer_gating",
    "depformer_norm",
    "depformer_layer_scale",
    "depformer_dim_feedforward_scale",
    "causal",
    "existing_text_end_padding_id",
    "cross_attention",
    "conditioners",
    "fuser",
    "extra_heads_num_heads",
    "extra_heads_dim",
    "demux_second_stream",
    "depformer_low_rank_embeddings",
    "depformer_weights_per_step_schedule",
    "layer_scale",
}


@dataclass(frozen=True)
class MoshiConfig:
    """The subset of moshi's LM config that fixes tensor shapes and streaming behaviour."""

    dim: int
    num_heads: int
    num_layers: int
    hidden_scale: float
    context: int
    max_period: int
    text_card: int
    card: int
    n_q: int
    dep_q: int
    delays: tuple[int, ...]
    depformer_dim: int
    depformer_dim_feedforward: int
    depformer_num_heads: int
    depformer_num_layers: int
    depformer_context: int
    depformer_max_period: int
    existing_text_padding_id: int = 3
    positional_embedding: str = "rope"
    depformer_pos_emb: str = "none"
    norm: str = "rms_norm_f32"
    gating: str = "silu"

    # --- derived sizes -------------------------------------------------------------------
    @property
    def text_in_vocab(self) -> int:
        """Input text vocabulary: `text_card` plus the initial token."""
        return self.text_card + 1

    @property
    def audio_in_vocab(self) -> int:
        """Input audio vocabulary: `card` codes plus the padding token."""
        return self.card + 1

    @property
    def user_codebooks(self) -> int:
        """Codebooks the user's audio contributes each frame (8 for moshiko)."""
        return self.n_q - self.dep_q

    @property
    def main_ff(self) -> int:
        return int(self.hidden_scale * self.dim)

    @property
    def main_hidden(self) -> int:
        return mlp_hidden(self.dim, self.main_ff)

    @property
    def depformer_hidden(self) -> int:
        return mlp_hidden(self.depformer_dim, self.depformer_dim_feedforward)

    # --- conversions ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path = "config") -> MoshiConfig:
        """Parse moshi's JSON config, refusing features this runtime cannot stream."""
        if not isinstance(data, dict):
            raise ConfigError("expected a JSON object", path=source)
        _reject_unsupported(data, source)
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        missing = [name for name, f in known.items() if name not in data and f.default is MISSING]
        if missing:
            raise ConfigError(f"missing keys: {', '.join(sorted(missing))}", path=source)
        for name, f in known.items():
            if name not in data:
                continue
            value = data[name]
            if name == "delays":
                if not isinstance(value, list) or not all(_is_int(v) for v in value):
                    raise ConfigError("'delays' must be a list of integers", path=source)
                value = tuple(value)
            elif f.type == "int" and not _is_int(value):
                raise ConfigError(f"'{name}' must be an integer, got {_shown(value)}", path=source)
            elif f.type == "float" and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ConfigError(
                    f"'{name}' must be a finite number, got {_shown(value)}", path=source
                )
            elif f.type == "str" and not isinstance(value, str):
                raise ConfigError(f"'{name}' must be a string, got {_shown(value)}", path=source)
            values[name] = value
        unknown = set(data) - set(known) - _IGNORED_KEYS
        if unknown:
            raise ConfigError(f"unknown keys: {', '.join(sorted(unknown))}", path=source)
        config = cls(**values)
        config.check(source)
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> MoshiConfig:
        path = Path(path)
        raw = read_regular(path, MAX_CONFIG_BYTES, ConfigError)
        data = load_strict(
            raw, max_depth=MAX_CONFIG_DEPTH, error=ConfigError, path=path, what="not a valid config"
        )
        return cls.from_dict(data, source=path)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["delays"] = list(self.delays)
        return data

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def check(self, source: str | Path = "config") -> None:
        """Ranges first (so nothing absurd is ever allocated or listed), then the sizes that
        must agree before any tensor is looked at."""
        ranges = []
        for name, (low, high) in LIMITS.items():
            if not low <= getattr(self, name) <= high:
                ranges.append(f"'{name}' must be {low}..{high:,}, got {getattr(self, name):,}")
        if not 0 < self.hidden_scale <= MAX_HIDDEN_SCALE:
            ranges.append(f"'hidden_scale' must be in (0, {MAX_HIDDEN_SCALE:g}]")
        if not all(0 <= d <= MAX_DELAY for d in self.delays):
            ranges.append(f"'delays' must be 0..{MAX_DELAY} frames each")
        if ranges:
            raise ConfigError("; ".join(ranges[:3]), path=source)
        problems = []
        if not 0 <= self.existing_text_padding_id < self.text_card:
            problems.append(
                f"'existing_text_padding_id' {self.existing_text_padding_id} is outside the "
                f"text vocabulary (0..{self.text_card - 1})"
            )
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            problems.append(
                f"dim {self.dim} is not num_heads {self.num_heads} times an even head size"
            )
        if self.main_hidden < 1 or self.depformer_hidden < 1:
            problems.append("the MLP widths (hidden_scale, depformer_dim_feedforward) are zero")
        if self.n_q - self.dep_q > LIMITS["dep_q"][1]:
            problems.append(f"n_q - dep_q = {self.n_q - self.dep_q} user codebooks; Mimi has 32")
        if self.depformer_dim % self.depformer_num_heads:
            problems.append(
                f"depformer_dim {self.depformer_dim} is not a multiple of "
                f"depformer_num_heads {self.depformer_num_heads}"
            )
        if not 0 < self.dep_q <= self.n_q:
            problems.append(f"dep_q {self.dep_q} must be between 1 and n_q {self.n_q}")
        if len(self.delays) != self.n_q + 1:
            problems.append(
                f"'delays' has {len(self.delays)} entries, expected n_q + 1 = {self.n_q + 1}"
            )
        elif self.delays[0] != 0 or min(self.delays) < 0:
            problems.append("'delays' must start with 0 (the text stream) and be non-negative")
        if problems:
            raise ConfigError("; ".join(problems), path=source)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: object) -> str:
    """A value for an error line: short, whatever it is."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def mlp_hidden(d_model: int, dim_feedforward: int) -> int:
    """Width of the gated MLP's hidden layer, exactly as moshi_mlx's MlpGating computes it."""
    if dim_feedforward == 4 * d_model:
        return 11 * d_model // 4
    return 2 * dim_feedforward // 3


def _reject_unsupported(data: dict[str, Any], source: str | Path) -> None:
    checks = [
        (bool(data.get("conditioners")), "conditioners"),
        (bool(data.get("cross_attention")), "cross-attention"),
        (bool(data.get("demux_second_stream")), "a demuxed second text stream"),
        (data.get("depformer_low_rank_embeddings") is not None, "low-rank depformer embeddings"),
        (
            data.get("depformer_weights_per_step_schedule") is not None,
            "a depformer weight schedule",
        ),
        (bool(data.get("extra_heads_num_heads")), "extra heads"),
        (data.get("layer_scale") is not None, "layer scale"),
        (data.get("gating", "silu") != "silu", f"gating {data.get('gating')!r}"),
        (
            not str(data.get("norm", "rms_norm")).startswith("rms_norm"),
            f"norm {data.get('norm')!r}",
        ),
        (
            data.get("positional_embedding", "rope") != "rope",
            "a positional embedding other than rope",
        ),
        (data.get("depformer_pos_emb", "none") != "none", "depformer positional embeddings"),
    ]
    for bad, what in checks:
        if bad:
            raise ConfigError(
                f"uses {what}, which this runtime does not support (Moshi v0.1-style models only)",
                path=source,
            )


# --- presets -------------------------------------------------------------------------------

MOSHIKO_V0_1 = MoshiConfig(
    dim=4096,
    num_heads=32,
    num_layers=32,
    hidden_scale=4.125,
    context=3000,
    max_period=10000,
    text_card=32000,
    card=2048,
    n_q=16,
    dep_q=8,
    delays=(0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1),
    depformer_dim=1024,
    depformer_dim_feedforward=4224,
    depformer_num_heads=16,
    depformer_num_layers=6,
    depformer_context=8,
    depformer_max_period=10000,
)

# Same structure, tiny sizes: steps in milliseconds on a CPU. The audio card stays 2048 so
# real Mimi codes fit; widths are multiples of 256 so q4 (group 32) and q8 (group 64) both work.
TINY = MoshiConfig(
    dim=256,
    num_heads=4,
    num_layers=2,
    hidden_scale=4.125,
    context=3000,
    max_period=10000,
    text_card=1000,
    card=2048,
    n_q=16,
    dep_q=8,
    delays=MOSHIKO_V0_1.delays,
    depformer_dim=256,
    depformer_dim_feedforward=1056,
    depformer_num_heads=4,
    depformer_num_layers=1,
    depformer_context=8,
    depformer_max_period=10000,
)

# The same structure (16 codebooks, 8 generated, the v0.1 delays) at toy widths: a step's time
# is the host's (the engine's benchmark and tests). Hidden sizes are 128 so q4 (group 32) and
# q8 (group 64) both quantize. Never saved as a checkpoint.
MICRO = replace(
    TINY,
    dim=64,
    num_heads=2,
    num_layers=2,
    hidden_scale=3.0,
    text_card=100,
    card=32,
    depformer_dim=64,
    depformer_dim_feedforward=192,
    depformer_num_heads=2,
    depformer_num_layers=1,
)

PRESET_CONFIGS: dict[str, MoshiConfig] = {"moshiko-v0.1": MOSHIKO_V0_1, "tiny": TINY}
