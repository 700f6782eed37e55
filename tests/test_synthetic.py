"""Synthetic checkpoints: the published layout, loadable by the real runtimes, exact sizes."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
import sentencepiece as spm
from safetensors import safe_open
from safetensors.numpy import save as st_save
from typer.testing import CliRunner

from assistant.checkpoint import writing
from assistant.checkpoint.config import MOSHIKO_V0_1, TINY
from assistant.checkpoint.layout import Q4, Q8, TensorSpec, expected_tensors
from assistant.checkpoint.mimi_layout import (
    PUBLISHED_MIMI_BYTES,
    mimi_codebook_count,
    mimi_parameter_count,
    mimi_tensors,
)
from assistant.checkpoint.safetensors_writer import plan_safetensors, write_safetensors
from assistant.checkpoint.synthetic import checkpoint as ckpt
from assistant.checkpoint.synthetic.lm import WEIGHT_STD, LmTensorSource, lm_file_size, write_lm
from assistant.checkpoint.synthetic.mimi import mimi_file_size
from assistant.checkpoint.synthetic.text_tokenizer import MIN_VOCAB, write_text_tokenizer
from assistant.cli import _register, app
from assistant.errors import InsufficientDiskError, UsageError
from assistant.voice.model import build_model
from tests.support.helpers import require_free_disk, run_script

Q4_BYTES = 4_805_545_040
Q8_BYTES = 8_168_804_664

_register()
runner = CliRunner()


def _header(path: Path) -> tuple[bytes, dict]:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return raw[: 8 + n], json.loads(raw[8 : 8 + n])


def _data_order(header: dict) -> list[str]:
    names = [k for k in header if k != "__metadata__"]
    return sorted(names, key=lambda k: header[k]["data_offsets"][0])


# --- the writer -------------------------------------------------------------------------------


def _sample_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "b.weight": rng.integers(0, 2**16, (3, 5), dtype=np.uint16),  # bf16 bits
        "a.scales": rng.integers(0, 2**32, (4, 2), dtype=np.uint32),
        "layers.10.norm": rng.standard_normal(7).astype(np.float32),
        "layers.9.x": rng.standard_normal((2, 3, 4)).astype(np.float32),
    }


def _mx(name: str, a: np.ndarray) -> mx.array:
    return mx.array(a).view(mx.bfloat16) if name == "b.weight" else mx.array(a)


def test_mlx_style_is_byte_identical_to_mx_save_safetensors(tmp_path: Path) -> None:
    arrays = _sample_arrays()
    reference = tmp_path / "mx.safetensors"
    mx.save_safetensors(str(reference), {k: _mx(k, a) for k, a in arrays.items()})
    _, header = _header(reference)
    dtypes = {k: header[k]["dtype"] for k in arrays}
    # MLX's data order is its hash map's; give ours the same order and compare every byte.
    specs = [TensorSpec(k, arrays[k].shape, dtypes[k]) for k in _data_order(header)]
    ours = tmp_path / "ours.safetensors"
    write_safetensors(ours, specs, lambda s: arrays[s.name], style="mlx")
    assert ours.read_bytes() == reference.read_bytes()


def test_safetensors_style_is_byte_identical_to_the_safetensors_library(tmp_path: Path) -> None:
    arrays = {k: a for k, a in _sample_arrays().items() if a.dtype != np.uint16}
    reference = st_save(arrays)
    n = int.from_bytes(reference[:8], "little")
    header = json.loads(reference[8 : 8 + n])
    specs = [TensorSpec(k, arrays[k].shape, header[k]["dtype"]) for k in _data_order(header)]
    ours = tmp_path / "ours.safetensors"
    write_safetensors(ours, specs, lambda s: arrays[s.name], style="safetensors")
    assert ours.read_bytes() == reference


def test_published_style_is_mlx_without_metadata_padded_to_8(tmp_path: Path) -> None:
    arrays = _sample_arrays()
    specs = [
        TensorSpec(
            k,
            a.shape,
            "BF16" if a.dtype == np.uint16 else {np.uint32: "U32", np.float32: "F32"}[a.dtype.type],
        )
        for k, a in sorted(arrays.items())
    ]
    mlx_header = plan_safetensors(specs, "mlx").header[8:]
    published = plan_safetensors(specs, "published").header
    text = published[8:]
    assert int.from_bytes(published[:8], "little") == len(text) and len(text) % 8 == 0
    assert text.rstrip(b" ") == mlx_header.replace(b'"__metadata__":null,', b"")
    path = tmp_path / "published.safetensors"
    write_safetensors(path, specs, lambda s: arrays[s.name])
    loaded = mx.load(str(path))
    assert np.array_equal(np.array(loaded["a.scales"]), arrays["a.scales"])
    with safe_open(str(path), "np") as f:
        assert np.array_equal(f.get_tensor("layers.9.x"), arrays["layers.9.x"])


def test_writer_rejects_a_source_of_the_wrong_size(tmp_path: Path) -> None:
    spec = TensorSpec("x", (4,), "F32")
    with pytest.raises(ValueError, match="expected 16"):
        write_safetensors(tmp_path / "x.safetensors", [spec], lambda s: np.zeros(3, np.float32))


# --- exact published sizes, computed without writing --------------------------------------------


def test_full_size_files_have_the_published_sizes() -> None:
    assert lm_file_size(MOSHIKO_V0_1, Q4) == Q4_BYTES
    assert lm_file_size(MOSHIKO_V0_1, Q8) == Q8_BYTES
    assert len(expected_tensors(MOSHIKO_V0_1, Q4)) == 1247
    assert mimi_file_size(32) == PUBLISHED_MIMI_BYTES
    assert round(mimi_parameter_count(32) / 1e6, 1) == 96.2


# --- the LM -------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["q4", "q8", "bf16"])
def test_tiny_lm_loads_strictly_and_steps_finite(tiny_checkpoint, label: str) -> None:
    from moshi_mlx.utils.sampling import Sampler

    folder = tiny_checkpoint(label)
    quant = writing.parse_quant(label)
    path = folder / writing.model_filename(quant)
    assert path.stat().st_size == lm_file_size(TINY, quant)
    model = build_model(TINY, quant)
    model.load_weights(str(path), strict=True)
    logits = model(mx.array([[TINY.text_card]]))
    text, audio = model.sample(
        mx.array([[TINY.text_card]]), [mx.array([[0]])] * TINY.n_q, Sampler(), Sampler()
    )
    mx.eval(logits, text, audio)
    assert logits.shape == (1, 1, TINY.text_card)
    assert mx.all(mx.isfinite(logits)).item()
    assert 0 < float(logits.astype(mx.float32).std().item()) < 10
    assert 0 <= text.item() < TINY.text_card
    assert audio is not None
    assert audio.shape == (1, TINY.dep_q, 1) and mx.all(audio < TINY.card).item()


def test_lm_is_deterministic_per_seed(tmp_path: Path) -> None:
    a = write_lm(tmp_path / "a.safetensors", TINY, Q4, seed=3).read_bytes()
    b = write_lm(tmp_path / "b.safetensors", TINY, Q4, seed=3).read_bytes()
    c = write_lm(tmp_path / "c.safetensors", TINY, Q4, seed=4).read_bytes()
    assert a == b and a != c and len(a) == len(c)


def _bf16_values(chunks) -> np.ndarray:
    bits = np.concatenate(list(chunks))
    return (bits.astype(np.uint32) << 16).view(np.float32)


def test_lm_weights_are_normal_and_q4_scales_and_biases_uniform() -> None:
    """The values drawn from quantile tables (draws.py) have their distributions' moments."""
    source = LmTensorSource(Q4, seed=0)
    w = _bf16_values(source(TensorSpec("x.weight", (1024, 1024), "BF16")))
    assert abs(w.mean()) < 0.01 * WEIGHT_STD
    assert abs(w.std() / WEIGHT_STD - 1) < 0.01
    assert abs(np.mean(np.abs(w) < WEIGHT_STD) - 0.6827) < 0.005  # within one std
    assert abs(np.mean(np.abs(w) < 3 * WEIGHT_STD) - 0.9973) < 0.001
    assert np.abs(w).max() < 4.5 * WEIGHT_STD  # the table's tails end at 4.3 std
    for name, sign in [("x.scales", 1), ("x.biases", -1)]:
        v = _bf16_values(source(TensorSpec(name, (4096, 32), "BF16")))
        assert np.all(np.sign(v) == sign), name
        r = v / v.mean()  # uniform on [0.8, 1.2] times the middle
        assert 0.79 < r.min() < 0.81 and 1.19 < r.max() < 1.21, (name, r.min(), r.max())
        assert abs(r.std() / (0.4 / np.sqrt(12)) - 1) < 0.03, (name, r.std())


# --- Mimi ---------------------------------------------------------------------------------------


def test_mimi_layout_and_codebook_count(mimi_file: Path) -> None:
    assert mimi_file.stat().st_size == PUBLISHED_MIMI_BYTES
    _, header = _header(mimi_file)
    assert "__metadata__" not in header
    expected = mimi_tensors(32)
    assert list(header) == list(expected)  # name order, as PyTorch's safetensors writes it
    for name, spec in expected.items():
        assert (tuple(header[name]["shape"]), header[name]["dtype"]) == (spec.shape, "F32")
    assert mimi_codebook_count(header) == 32
    assert mimi_codebook_count(mimi_tensors(8)) == 8
    assert mimi_codebook_count(mimi_tensors(1)) == 1
    holed = [n for n in expected if ".rvq_rest.vq.layers.3." not in n]
    assert mimi_codebook_count(holed) == 4
    assert mimi_codebook_count(n for n in expected if "quantizer" not in n) == 0


def test_mimi_runs_in_rustymimi_and_mlx_with_finite_output(mimi_file: Path) -> None:
    import rustymimi
    from moshi_mlx.models import mimi as mlx_mimi

    pcm = (0.1 * np.random.default_rng(0).standard_normal((1, 1, 1920))).astype(np.float32)
    tokenizer = rustymimi.Tokenizer(str(mimi_file), num_codebooks=8)
    codes = tokenizer.encode_step(pcm)
    assert codes.dtype == np.uint32 and codes.shape == (1, 8, 1)
    assert (codes < 2048).all()
    out = tokenizer.decode_step(codes)
    assert out.dtype == np.float32 and out.shape == (1, 1, 1920)
    assert np.isfinite(out).all() and 0 < np.abs(out).max() < 100

    model = mlx_mimi.Mimi(mlx_mimi.mimi_202407(32))
    model.load_pytorch_weights(str(mimi_file), strict=True)
    mlx_codes = model.encode_step(mx.array(pcm))
    mlx_out = model.decode_step(mlx_codes)
    mx.eval(mlx_codes, mlx_out)
    assert mlx_codes.shape == (1, 32, 1) and mlx_out.shape == (1, 1, 1920)
    assert mx.all(mx.isfinite(mlx_out)).item()
    # Both read the same PyTorch layout: a transposed conv in either would scramble the codes.
    same = (np.array(mlx_codes)[:, :8] == codes).sum()
    assert same >= 7, (np.array(mlx_codes)[:, :8].ravel(), codes.ravel())


# --- text tokenizer -----------------------------------------------------------------------------


@pytest.mark.parametrize("vocab", [TINY.text_card, MOSHIKO_V0_1.text_card])
def test_text_tokenizer_has_exact_vocab_and_moshi_ids(tmp_path: Path, vocab: int) -> None:
    path = write_text_tokenizer(tmp_path / "tok.model", vocab)
    sp = spm.SentencePieceProcessor(model_file=str(path))
    assert sp.get_piece_size() == vocab
    assert [sp.id_to_piece(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "<pad>"]
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, 3)
    text = "Hello there, what time is it?"
    ids = sp.encode(text)
    assert sp.decode(ids) == text and max(ids) < 1000  # learned pieces come first
    assert write_text_tokenizer(tmp_path / "again.model", vocab).read_bytes() == path.read_bytes()


def test_text_tokenizer_refuses_a_tiny_vocab(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=str(MIN_VOCAB)):
        write_text_tokenizer(tmp_path / "tok.model", MIN_VOCAB - 1)


# --- checkpoint folders -------------------------------------------------------------------------


def test_tiny_folder_is_laid_out_like_a_published_repo(tiny_checkpoint, mimi_file: Path) -> None:
    folder = tiny_checkpoint("q4")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            "config.json",
            "model.q4.safetensors",
            "tokenizer-e351c8d8-checkpoint125.safetensors",
            "tokenizer_spm_32k_3.model",
        ]
    )
    assert json.loads((folder / "config.json").read_text()) == TINY.to_dict()
    assert (folder / ckpt.MIMI_FILE).stat().st_size == mimi_file.stat().st_size
    sp = spm.SentencePieceProcessor(model_file=str(folder / ckpt.TEXT_TOKENIZER_FILE))
    assert sp.get_piece_size() == TINY.text_card


def test_make_checkpoint_skips_complete_files_and_repairs_others(
    tmp_path: Path, synthetic_cache: Path, mimi_file: Path
) -> None:
    first = ckpt.make_checkpoint(tmp_path, quant=Q8, cache_dir=synthetic_cache)
    assert len(first.written) == 4
    again = ckpt.make_checkpoint(tmp_path, quant=Q8, cache_dir=synthetic_cache)
    assert again.written == ()
    with first.model.open("r+b") as f:  # a truncated download / interrupted copy
        f.truncate(1000)
    repaired = ckpt.make_checkpoint(tmp_path, quant=Q8, cache_dir=synthetic_cache)
    assert repaired.written == (first.model,)
    assert first.model.stat().st_size == lm_file_size(TINY, Q8)
    forced = ckpt.make_checkpoint(tmp_path, quant=Q8, cache_dir=synthetic_cache, overwrite=True)
    assert len(forced.written) == 4
    assert mimi_file.stat().st_size == PUBLISHED_MIMI_BYTES  # the shared copy is untouched


def test_interrupted_write_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        if done > 1_000_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ckpt.make_checkpoint(tmp_path, quant=Q4, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_refuses_before_writing_when_the_disk_is_too_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(writing.shutil, "disk_usage", lambda p: usage._replace(free=10**9))
    with pytest.raises(InsufficientDiskError) as info:
        ckpt.make_checkpoint(tmp_path, config_name="moshiko-v0.1", quant=Q4)
    message = str(info.value)
    assert str(tmp_path) in message and "1,000,000,000 available" in message
    assert list(tmp_path.iterdir()) == []


def test_unknown_names_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="q4, q8, bf16"):
        writing.parse_quant("q3")
    with pytest.raises(UsageError, match="tiny"):
        ckpt.make_checkpoint(tmp_path, config_name="huge", quant=Q4)


def test_cli_make_checkpoint(tmp_path: Path) -> None:
    result = runner.invoke(app, ["make-checkpoint", str(tmp_path / "ck"), "--quant", "bf16"])
    assert result.exit_code == 0, result.output
    assert "wrote 4 of 4 files" in result.output and "model.safetensors" in result.output
    assert (tmp_path / "ck" / "model.safetensors").stat().st_size == lm_file_size(TINY, None)
    result = runner.invoke(app, ["make-checkpoint", str(tmp_path / "ck"), "--quant", "bf16"])
    assert result.exit_code == 0 and "already complete" in result.output
    result = runner.invoke(app, ["make-checkpoint", str(tmp_path / "x"), "--quant", "q5"])
    assert isinstance(result.exception, UsageError)


# --- full size, for real ------------------------------------------------------------------------

_FULL_WRITE = textwrap.dedent(
    """
    import json, pathlib, resource, sys, time
    from assistant.checkpoint.synthetic.checkpoint import make_checkpoint
    from assistant.checkpoint.writing import parse_quant

    def peak_rss_kib():
        # ru_maxrss survives execve on Linux, so a child of a big pytest process would report
        # its parent's peak; VmHWM belongs to this process image alone.
        status = pathlib.Path("/proc/self/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        scale = 1024 if sys.platform == "darwin" else 1  # macOS reports bytes
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // scale

    start = time.perf_counter()
    result = make_checkpoint(sys.argv[1], config_name="moshiko-v0.1", quant=parse_quant("q4"))
    print(json.dumps({
        "seconds": time.perf_counter() - start,
        "peak_rss_kib": peak_rss_kib(),
        "files": sorted(p.name for p in result.files),
    }))
    """
)


@pytest.mark.slow
def test_full_size_q4_streams_in_under_1_gib(tmp_path: Path) -> None:
    require_free_disk(tmp_path, Q4_BYTES + PUBLISHED_MIMI_BYTES + 2_000_000)
    folder = tmp_path / "moshiko-q4"
    stats = run_script(_FULL_WRITE, str(folder))
    try:
        assert (folder / "model.q4.safetensors").stat().st_size == Q4_BYTES
        assert (folder / ckpt.MIMI_FILE).stat().st_size == PUBLISHED_MIMI_BYTES
        published = ["model.q4.safetensors", ckpt.MIMI_FILE, ckpt.TEXT_TOKENIZER_FILE]
        assert stats["files"] == sorted(published)  # no config.json, as published
        assert stats["peak_rss_kib"] < 1024 * 1024, stats
        header, parsed = _header(folder / "model.q4.safetensors")
        assert len(header) == 159_312 and "__metadata__" not in parsed
        model = build_model(MOSHIKO_V0_1, Q4)
        model.load_weights(str(folder / "model.q4.safetensors"), strict=True)
        mx.eval(model.out_norm.weight, model.text_emb.scales)
        assert mx.all(model.out_norm.weight == 1).item()
    finally:
        shutil.rmtree(folder)
