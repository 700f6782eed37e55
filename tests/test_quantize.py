"""Quantizing a bf16 checkpoint as the published q4/q8 were made: one model file (the checks and
weights of `quantize_folder`), the derived synthetic q4/q8 of `make_checkpoint`, and
`assistant make-checkpoint --from`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import textwrap
from itertools import pairwise
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten
from typer.testing import CliRunner

from assistant.checkpoint.config import MOSHIKO_V0_1, TINY
from assistant.checkpoint.inspection import inspect_model
from assistant.checkpoint.layout import Q4, Q8, Quantization, expected_tensors, linears
from assistant.checkpoint.resolve import CheckpointFiles, CheckpointSpec, resolve
from assistant.checkpoint.synthetic import checkpoint as ckpt
from assistant.checkpoint.synthetic.lm import lm_file_size, write_lm
from assistant.cli import _register, app
from assistant.errors import CheckpointError, MismatchError, UsageError
from assistant.voice.loader import load
from assistant.voice.model import build_model
from tests.support.helpers import require_free_disk, run_script
from tests.support.quantize import quantize_checkpoint

_register()
runner = CliRunner()
QUANTS = {"q4": Q4, "q8": Q8}


def _header(path: Path) -> dict:
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


def _bf16_model(tiny_checkpoint) -> Path:
    return tiny_checkpoint("bf16") / "model.safetensors"


@pytest.fixture(scope="module")
def derived(tiny_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny bf16 checkpoint quantized by `quantize_checkpoint`, once per quantization."""
    src = _bf16_model(tiny_checkpoint)
    folder = tmp_path_factory.mktemp("derived")
    return {
        label: quantize_checkpoint(src, folder / f"model.{label}.safetensors", q)
        for label, q in QUANTS.items()
    }


@pytest.mark.parametrize("label", ["q4", "q8"])
def test_derived_file_has_exactly_the_published_layout_and_loads_strictly(
    derived: dict[str, Path], tiny_checkpoint, label: str
) -> None:
    quant, path = QUANTS[label], derived[label]
    header = _header(path)
    expected = expected_tensors(TINY, quant)
    assert list(header) == list(expected)  # names sorted, no __metadata__
    for name, spec in expected.items():
        assert (header[name]["dtype"], tuple(header[name]["shape"])) == (spec.dtype, spec.shape)
    offsets = [header[name]["data_offsets"] for name in expected]
    assert offsets[0][0] == 0 and all(a[1] == b[0] for a, b in pairwise(offsets))
    assert path.stat().st_size == lm_file_size(TINY, quant)  # the published header style

    config = tiny_checkpoint("bf16") / "config.json"
    info = inspect_model(path, config)
    assert info.problems == [] and info.quantization == quant
    loaded = load(CheckpointFiles(model=path, config=config), check_memory=False)
    assert loaded.quantization == quant


@pytest.mark.parametrize("label", ["q4", "q8"])
def test_derived_weights_are_what_nn_quantize_makes_of_the_bf16_model(
    derived: dict[str, Path], tiny_checkpoint, label: str
) -> None:
    """moshi_mlx's recipe for the published files: bf16 model, then nn.quantize."""
    quant = QUANTS[label]
    model = build_model(TINY, None)
    model.load_weights(str(_bf16_model(tiny_checkpoint)), strict=True)
    nn.quantize(model, bits=quant.bits, group_size=quant.group_size)
    reference = dict(tree_flatten(model.parameters()))
    ours = mx.load(str(derived[label]))
    assert sorted(ours) == sorted(reference)
    for name, array in reference.items():
        assert ours[name].dtype == array.dtype, name
        assert mx.array_equal(ours[name], array).item(), name


@pytest.mark.parametrize(("label", "bound"), [("q4", 0.1), ("q8", 0.01)])
def test_dequantized_weights_are_close_to_the_bf16_ones(
    derived: dict[str, Path], tiny_checkpoint, label: str, bound: float
) -> None:
    """Relative error per matrix, ||dequantized - w|| / ||w||: about 0.08 at 4 bits (groups
    of 32) and 0.007 at 8 bits (groups of 64) for normal weights; any bug in the bits, the
    group size or the element order is far above both bounds."""
    quant = QUANTS[label]
    source = mx.load(str(_bf16_model(tiny_checkpoint)))
    quantized = mx.load(str(derived[label]))
    errors = {}
    for lin in linears(TINY):
        w = source[f"{lin.name}.weight"].astype(mx.float32)
        back = mx.dequantize(
            quantized[f"{lin.name}.weight"],
            quantized[f"{lin.name}.scales"].astype(mx.float32),
            quantized[f"{lin.name}.biases"].astype(mx.float32),
            quant.group_size,
            quant.bits,
        )
        errors[lin.name] = (mx.linalg.norm(back - w) / mx.linalg.norm(w)).item()
    assert len(errors) == len(list(linears(TINY)))
    assert max(errors.values()) < bound, max(errors.items(), key=lambda kv: kv[1])


def test_an_already_quantized_source_is_refused_naming_it(tiny_checkpoint, tmp_path: Path) -> None:
    src = tiny_checkpoint("q4") / "model.q4.safetensors"
    dst = tmp_path / "model.q8.safetensors"
    with pytest.raises(CheckpointError) as info:
        quantize_checkpoint(src, dst, Q8)
    message = str(info.value)
    assert message.startswith(f"{src}: already quantized (q4, groups of 32)")
    assert "bf16" in message
    assert list(tmp_path.iterdir()) == []


def test_a_source_that_does_not_match_its_config_is_refused(
    tiny_checkpoint, tmp_path: Path
) -> None:
    """Without its config.json the tiny file is checked against moshiko v0.1, and fails."""
    src = tmp_path / "alone" / "model.safetensors"
    src.parent.mkdir()
    shutil.copyfile(_bf16_model(tiny_checkpoint), src)
    with pytest.raises(MismatchError) as info:
        quantize_checkpoint(src, tmp_path / "model.q4.safetensors", Q4)
    assert str(info.value).startswith(f"{src}: weights do not match the architecture")
    assert not (tmp_path / "model.q4.safetensors").exists()


def test_a_destination_that_lies_about_its_bits_is_refused(tiny_checkpoint, tmp_path: Path) -> None:
    dst = tmp_path / "model.q8.safetensors"
    with pytest.raises(UsageError, match="says 8-bit but the weights would be q4"):
        quantize_checkpoint(_bf16_model(tiny_checkpoint), dst, Q4)
    assert not dst.exists()


# --- make_checkpoint derives small q4/q8 from the seed's bf16 ----------------------------------


def test_tiny_q4_q8_are_the_same_seeds_bf16_quantized(
    tiny_checkpoint, derived: dict[str, Path]
) -> None:
    assert ckpt.derives_by_default(TINY) and not ckpt.derives_by_default(MOSHIKO_V0_1)
    for label, path in derived.items():
        made = tiny_checkpoint(label) / f"model.{label}.safetensors"
        assert made.read_bytes() == path.read_bytes()


def test_derive_false_writes_independent_weights_of_the_same_size(
    tmp_path: Path, derived: dict[str, Path]
) -> None:
    write_lm(tmp_path / "model.q4.safetensors", TINY, Q4, seed=0)
    independent = (tmp_path / "model.q4.safetensors").read_bytes()
    made = ckpt.make_checkpoint(tmp_path / "ck", quant=Q4, derive=False)
    assert made.model.read_bytes() == independent
    assert len(independent) == derived["q4"].stat().st_size
    assert independent != derived["q4"].read_bytes()


def test_derived_write_reports_progress_and_cleans_up_when_interrupted(tmp_path: Path) -> None:
    """Interrupted while quantizing, after the bf16 weights were written: nothing is left."""
    bf16_size = lm_file_size(TINY, None)
    seen: list[tuple[int, int]] = []

    def interrupt(done: int, total: int) -> None:
        seen.append((done, total))
        if done > bf16_size + 1_000_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ckpt.make_checkpoint(tmp_path, quant=Q4, progress=interrupt)
    assert list(tmp_path.iterdir()) == []
    dones = [d for d, _ in seen]
    assert dones == sorted(dones)
    [total] = {t for _, t in seen}  # one total: the bf16 weights, the q4 file, the rest
    assert total > bf16_size + lm_file_size(TINY, Q4)


# --- assistant make-checkpoint --from -------------------------------------------------------------


@pytest.mark.parametrize("label", ["q4", "q8"])
def test_cli_from_makes_a_folder_that_loads(
    tiny_checkpoint, derived: dict[str, Path], tmp_path: Path, label: str
) -> None:
    source = tiny_checkpoint("bf16")
    folder = tmp_path / f"tiny-{label}"
    argv = ["make-checkpoint", str(folder), "--quant", label, "--from", str(source)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "wrote 4 of 4 files" in result.output and "Quantized from" in result.output
    model = f"model.{label}.safetensors"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [model, ckpt.MIMI_FILE, ckpt.TEXT_TOKENIZER_FILE, "config.json"]
    )
    assert (folder / model).read_bytes() == derived[label].read_bytes()
    for name in (ckpt.MIMI_FILE, ckpt.TEXT_TOKENIZER_FILE, "config.json"):
        assert (folder / name).read_bytes() == (source / name).read_bytes()
    files = resolve(CheckpointSpec(target=str(folder)))
    assert files.model == folder / model and files.mimi and files.text_tokenizer
    assert load(files, check_memory=False).quantization == QUANTS[label]
    info = runner.invoke(app, ["info", str(folder), "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.output)["valid"] is True

    # Again: the model is re-quantized, the companions already there are kept.
    again = runner.invoke(app, argv)
    assert again.exit_code == 0 and "wrote 1 of 4 files" in again.output


def test_cli_from_a_model_file_in_a_folder_with_several_models(
    tiny_checkpoint, tmp_path: Path
) -> None:
    """A folder holding bf16 and q4 models: --from takes the bf16 one, or the file named."""
    source = tmp_path / "both"
    shutil.copytree(tiny_checkpoint("bf16"), source)
    shutil.copyfile(tiny_checkpoint("q4") / "model.q4.safetensors", source / "model.q4.safetensors")
    for target in (source, source / "model.safetensors"):
        out = tmp_path / f"from-{target.name}"
        result = runner.invoke(
            app, ["make-checkpoint", str(out), "-q", "q8", "--from", str(target)]
        )
        assert result.exit_code == 0, result.output
        assert (out / "model.q8.safetensors").stat().st_size == lm_file_size(TINY, Q8)


def test_cli_from_refuses_what_it_cannot_quantize(tiny_checkpoint, tmp_path: Path) -> None:
    out = tmp_path / "out"

    def run(*args: str):
        return runner.invoke(app, ["make-checkpoint", str(out), *args])

    q4 = tiny_checkpoint("q4")
    result = run("--quant", "q8", "--from", str(q4))
    assert isinstance(result.exception, CheckpointError)
    assert str(result.exception).startswith(f"{q4 / 'model.q4.safetensors'}: already quantized")
    bf16 = str(tiny_checkpoint("bf16"))
    result = run("--quant", "bf16", "--from", bf16)
    assert isinstance(result.exception, UsageError) and "q4 or q8" in str(result.exception)
    result = run("--from", bf16, "--seed", "3")
    assert isinstance(result.exception, UsageError) and "--seed" in str(result.exception)
    result = run("--from", str(tmp_path / "missing"))
    assert isinstance(result.exception, CheckpointError) and "no such file" in str(result.exception)
    assert not out.exists()


# --- full size, for real --------------------------------------------------------------------------

# Moshiko at full width with 2 of its 32 main layers: every kind of tensor at its published
# shape, the largest (text_emb, 262 MB of bf16) included, in a fifth of the time. That the
# layout's size of the full 32 layers is the published file's is checked below, and that the
# writer's full-size file has it in test_synthetic.py.
FULL_WIDTH = dataclasses.replace(MOSHIKO_V0_1, num_layers=2)

_FULL_QUANTIZE = textwrap.dedent(
    """
    import dataclasses, json, pathlib, sys
    from assistant.checkpoint.config import MOSHIKO_V0_1
    from assistant.checkpoint.layout import Q4, expected_tensors
    from tests.support.quantize import quantize_checkpoint
    from tests.support.helpers import write_sparse

    src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    config = dataclasses.replace(MOSHIKO_V0_1, num_layers=int(sys.argv[3]))
    write_sparse(src, expected_tensors(config, None))  # GBs of zeros, no disk
    config.write(src.parent / "config.json")
    quantize_checkpoint(src, dst, Q4)
    status = pathlib.Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_kib": peak}))
    """
)


def test_the_layout_gives_the_published_q4_size() -> None:
    assert lm_file_size(MOSHIKO_V0_1, Q4) == 4_805_545_040  # the published moshiko q4 file's


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads VmHWM from /proc")
def test_full_width_bf16_quantizes_to_the_layout_size_in_bounded_memory(
    tmp_path: Path,
) -> None:
    """The largest tensor (text_emb) is 262 MB of bf16: the whole file (2.8 GiB) never is in
    memory."""
    require_free_disk(tmp_path, lm_file_size(FULL_WIDTH, Q4))
    src, dst = tmp_path / "model.safetensors", tmp_path / "out" / "model.q4.safetensors"
    dst.parent.mkdir()
    stats = run_script(_FULL_QUANTIZE, str(src), str(dst), str(FULL_WIDTH.num_layers))
    try:
        assert src.stat().st_size > 2.5 * 2**30
        assert dst.stat().st_size == lm_file_size(FULL_WIDTH, Q4)
        assert stats["peak_rss_kib"] < 1024 * 1024, stats
        info = inspect_model(dst, src.parent / "config.json")
        assert info.problems == [] and info.quantization == Quantization(4, 32)
    finally:
        dst.unlink(missing_ok=True)
        src.unlink(missing_ok=True)
