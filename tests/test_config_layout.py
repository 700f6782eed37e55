"""The config format, and the tensor layout checked against moshi_mlx's own model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten
from moshi_mlx.models import config_v0_1

from assistant.checkpoint.config import MOSHIKO_V0_1, TINY, MoshiConfig
from assistant.checkpoint.layout import Quantization, expected_tensors, parameter_count
from assistant.errors import ConfigError
from assistant.voice.lm_config import to_lm_config
from assistant.voice.model import build_model

Q4, Q8 = Quantization(4, 32), Quantization(8, 64)
MLX_DTYPES = {mx.bfloat16: "BF16", mx.uint32: "U32"}


@pytest.mark.parametrize("quant", [None, Q4, Q8], ids=["bf16", "q4", "q8"])
def test_layout_is_exactly_moshi_mlx_quantized_model(quant: Quantization | None) -> None:
    model = build_model(TINY, quant)
    actual = {
        name: (tuple(v.shape), MLX_DTYPES[v.dtype]) for name, v in tree_flatten(model.parameters())
    }
    expected = {n: (s.shape, s.dtype) for n, s in expected_tensors(TINY, quant).items()}
    assert actual == expected


def test_published_moshiko_layout_counts() -> None:
    q4 = expected_tensors(MOSHIKO_V0_1, Q4)
    assert len(q4) == 1247
    assert sum(s.dtype == "U32" for s in q4.values()) == 362
    assert sum(s.dtype == "BF16" for s in q4.values()) == 885
    assert q4["transformer.layers.0.self_attn.in_proj.weight"].shape == (12288, 512)
    assert q4["transformer.layers.0.self_attn.in_proj.scales"].shape == (12288, 128)
    q8 = expected_tensors(MOSHIKO_V0_1, Q8)
    assert q8["transformer.layers.0.self_attn.in_proj.weight"].shape == (12288, 1024)
    assert q8["transformer.layers.0.self_attn.in_proj.scales"].shape == (12288, 64)
    assert 7.6e9 < parameter_count(MOSHIKO_V0_1) < 7.8e9


def test_moshiko_preset_builds_the_reference_architecture() -> None:
    ours, ref = to_lm_config(MOSHIKO_V0_1), config_v0_1()
    for field in ("d_model", "num_heads", "num_layers", "context", "max_period"):
        assert getattr(ours.transformer, field) == getattr(ref.transformer, field)
        assert getattr(ours.depformer.transformer, field) == getattr(
            ref.depformer.transformer, field
        )
    assert ours.audio_delays == ref.audio_delays
    assert ours.text_in_vocab_size == ref.text_in_vocab_size == 32001
    assert ours.audio_vocab_size == ref.audio_vocab_size == 2049
    assert ours.depformer.num_slices == ref.depformer.num_slices


def test_json_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    TINY.write(path)
    assert MoshiConfig.from_file(path) == TINY


def test_accepts_moshi_keys_it_does_not_need() -> None:
    data = MOSHIKO_V0_1.to_dict() | {"model_type": "moshi", "depformer_multi_linear": True}
    assert MoshiConfig.from_dict(data) == MOSHIKO_V0_1


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"dim": None}, "missing keys: dim"),
        ({"num_layers": "32"}, "'num_layers' must be an integer"),
        ({"hidden_scale": True}, "'hidden_scale' must be a finite number"),
        ({"delays": [0, 1]}, "'delays' has 2 entries"),
        ({"num_heads": 7}, "not num_heads 7 times an even head size"),
        ({"num_heads": 1024, "dim": 1024}, "not num_heads 1024 times an even head size"),
        # Absurd sizes are refused by range, before anything is built or listed.
        ({"num_layers": 10**9}, "'num_layers' must be 1..256, got 1,000,000,000"),
        ({"num_layers": 10**5}, "'num_layers' must be 1..256"),
        ({"dim": -4096}, "'dim' must be 1..65,536"),
        ({"context": 0}, "'context' must be 1..2,147,483,647"),
        ({"text_card": 10**30}, "'text_card' must be 1..1,048,576"),
        ({"dep_q": 40, "n_q": 48}, "'dep_q' must be 1..32"),
        ({"hidden_scale": 1e6}, "'hidden_scale' must be in (0, 64]"),
        ({"hidden_scale": 1e-9}, "MLP widths"),
        ({"delays": [0] + [10**9] * 16}, "'delays' must be 0..250 frames each"),
        ({"delays": [0] + [True] * 16}, "'delays' must be a list of integers"),
        ({"existing_text_padding_id": 32000}, "outside the text vocabulary"),
        ({"norm": 3}, "uses norm 3"),
        ({"conditioners": {"x": {}}}, "conditioners"),
        ({"cross_attention": True}, "cross-attention"),
        ({"wat": 1}, "unknown keys: wat"),
    ],
)
def test_bad_configs_name_the_file_and_the_problem(
    tmp_path: Path, change: dict, fragment: str
) -> None:
    data = MOSHIKO_V0_1.to_dict()
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as info:
        MoshiConfig.from_file(path)
    assert str(info.value).startswith(str(path)) and fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"dim": NaN}', "non-finite number NaN"),
        ('{"dim": Infinity}', "non-finite number Infinity"),
        ('{"hidden_scale": 1e999}', "number 1e999 is out of range"),
        ('{"dim": 1, "dim": 2}', "key 'dim' appears twice"),
        ("[" * 50_000 + "]" * 50_000, "nested 50000 levels deep"),
        ("[1, 2]", "expected a JSON object"),
        ('"moshi"', "expected a JSON object"),
    ],
)
def test_config_json_is_parsed_strictly(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        MoshiConfig.from_file(path)
    assert str(info.value).startswith(str(path)) and fragment in str(info.value), info.value


def test_config_values_must_be_finite(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    data = json.dumps(MOSHIKO_V0_1.to_dict()).replace(
        '"hidden_scale": 4.125', '"hidden_scale": NaN'
    )
    path.write_text(data)
    with pytest.raises(ConfigError, match="non-finite number NaN"):
        MoshiConfig.from_file(path)
    with pytest.raises(ConfigError, match="'hidden_scale' must be a finite number, got nan"):
        MoshiConfig.from_dict(MOSHIKO_V0_1.to_dict() | {"hidden_scale": float("nan")})


def test_config_that_is_not_a_regular_file_or_too_big(tmp_path: Path) -> None:
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="named pipe"):
        MoshiConfig.from_file(fifo)  # would block forever if opened for reading blindly
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (2 << 20))
    with pytest.raises(ConfigError, match="too large"):
        MoshiConfig.from_file(big)


def test_config_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        MoshiConfig.from_file(path)
