"""Quantize a bf16 Moshi model file the way the published q4 and q8 checkpoints were made.

moshi_mlx made them with `set_dtype(bfloat16)` then `nn.quantize(model, bits, group_size)`,
which replaces every Linear and Embedding weight by the uint32 weight, bf16 scales and bf16
biases of `mx.quantize` and leaves the RMSNorms alone. Here the same `mx.quantize` runs one
weight at a time, from the source file (loaded lazily) straight into the destination, written
in the published header style with names sorted, so memory stays about one tensor whatever the
model size and the result holds exactly `expected_tensors(config, quant)`.

MLX is imported only when weights are quantized (`mx.quantize` itself, so the bytes are
MLX's), never on import: the checkpoint package stays MLX-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CheckpointError, UsageError
from .catalogue import CONFIG_FILE, MIMI_FILE, TEXT_TOKENIZER_FILE
from .config import PRESET_CONFIGS, MoshiConfig
from .inspection import ModelInfo, bits_claimed_by_name
from .layout import Quantization, TensorSpec, expected_tensors, linears, quantization_fits
from .resolve import CheckpointFiles, CheckpointSpec, resolve
from .safetensors_writer import write_safetensors
from .synthetic.lm import lm_file_size
from .validate import CheckpointReport, inspect_checkpoint, require_valid
from .writing import (
    CheckpointFolder,
    Job,
    Progress,
    check_disk,
    link_or_copy,
    model_filename,
    run_jobs,
    same_content,
    staged_folder,
)

if TYPE_CHECKING:
    import mlx.core as mx


def check_source(info: ModelInfo) -> ModelInfo:
    """Refuse a model file that is already quantized or does not match its config."""
    if info.quantization is not None:
        q = info.quantization
        raise CheckpointError(
            f"already quantized ({q.label}, groups of {q.group_size}): "
            "quantize from the bf16 model file (model.safetensors)",
            path=info.path,
        )
    require_valid(CheckpointReport(CheckpointFiles(model=info.path), info, None, None))
    return info


def check_target(info: ModelInfo, dst: Path, quant: Quantization) -> None:
    """Refuse a quantization the architecture cannot take, or a destination that would lie
    about its bits or overwrite the source."""
    if problems := quantization_fits(info.config, quant):
        raise UsageError(
            f"cannot be quantized to {quant.label}: " + "; ".join(problems), path=info.path
        )
    claimed = bits_claimed_by_name(dst)
    if claimed is not None and claimed != quant.bits:
        raise UsageError(
            f"the file name says {claimed}-bit but the weights would be {quant.label}", path=dst
        )
    if dst.resolve() == info.path.resolve():
        raise UsageError("the destination is the source file", path=dst)


def quantize_weights(
    src: str | Path,
    dst: str | Path,
    config: MoshiConfig,
    quant: Quantization,
    progress: Progress | None = None,
) -> Path:
    """Stream `src` into `dst` quantized, with no checks (see `check_source`/`check_target`).

    Writes `dst` in place; callers that need an all-or-nothing file write to a temporary name.
    """
    src, dst = Path(src), Path(dst)
    specs = list(expected_tensors(config, quant).values())
    try:
        source = _Quantizer(src, quant, {lin.name for lin in linears(config)})
        write_safetensors(dst, specs, source, style="published", progress=progress)
    except (RuntimeError, ValueError, KeyError) as e:  # damaged data the header did not show
        raise CheckpointError(f"reading the weights failed: {e}", path=src) from None
    return dst


class _Quantizer:
    """The tensor source for `write_safetensors`: each spec's bytes, quantizing on demand.

    Specs come in name order, so a layer's `biases`, `scales` and `weight` are asked for one
    after the other; its quantized triple is kept only until all three have been written.
    """

    def __init__(self, path: Path, quant: Quantization, quantized: set[str]) -> None:
        import mlx.core as mx

        self.mx = mx
        self.quant = quant
        self.quantized = quantized  # module names whose weight is quantized
        self.weights = mx.load(str(path), format="safetensors")  # lazy: read when evaluated
        self.pending: dict[str, dict[str, mx.array]] = {}

    def __call__(self, spec: TensorSpec) -> np.ndarray:
        module, _, part = spec.name.rpartition(".")
        if module not in self.quantized:  # an RMSNorm weight: copied as it is
            return _numpy(self.weights.pop(spec.name))
        if module not in self.pending:
            weight = self.weights.pop(f"{module}.weight")
            wq, scales, biases = self.mx.quantize(weight, self.quant.group_size, self.quant.bits)
            self.mx.eval(wq, scales, biases)
            self.pending[module] = {"weight": wq, "scales": scales, "biases": biases}
        parts = self.pending[module]
        data = parts.pop(part)
        if not parts:
            del self.pending[module]
        return _numpy(data)


def _numpy(a: mx.array) -> np.ndarray:
    """The array's bytes as numpy (bf16 travels as its uint16 bits: numpy has no bfloat16)."""
    import mlx.core as mx

    if a.dtype == mx.bfloat16:
        a = a.view(mx.uint16)
    return np.array(a, copy=False)


def quantize_folder(
    folder: str | Path,
    source: str | Path,
    quant: Quantization,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> CheckpointFolder:
    """Write the bf16 checkpoint `source` quantized to `quant` into `folder`; returns its paths.

    `source` is a checkpoint folder (its `model.safetensors` when it holds several models), a
    model file (its folder supplies the rest) or a cached preset such as `moshiko-bf16`. The
    model is quantized as the published q4/q8 were (`quantize.quantize_weights`); the source's
    Mimi codec, text tokenizer and config.json are hard-linked (or copied) in under the
    published names. Every header is checked before anything is written. The model is always
    rewritten (a file of the right size may come from another source); companions already
    identical to the source's are kept unless `overwrite`.
    """
    files = resolve(CheckpointSpec(target=str(source), quant="bf16"))
    report = inspect_checkpoint(files)
    info = check_source(report.model)
    require_valid(report)  # the Mimi codec and text tokenizer too
    final = Path(folder)
    check_target(info, final / model_filename(quant), quant)
    with staged_folder(final) as folder:
        made = _write_quantized(folder, files, info, quant, overwrite, progress)
    return made.moved(folder, final)


def _write_quantized(
    folder: Path,
    files: CheckpointFiles,
    info: ModelInfo,
    quant: Quantization,
    overwrite: bool,
    progress: Progress | None,
) -> CheckpointFolder:
    model = folder / model_filename(quant)
    config = info.config

    def quantize(dest: Path, cb: Progress) -> None:
        quantize_weights(files.model, dest, config, quant, cb)

    jobs = [Job(model, lm_file_size(config, quant), quantize)]
    copies = {
        MIMI_FILE: files.mimi,
        TEXT_TOKENIZER_FILE: files.text_tokenizer,
        CONFIG_FILE: files.config,
    }
    for name, src in copies.items():
        if src is not None and (overwrite or not same_content(src, folder / name)):

            def copy(dest: Path, _progress: Progress, src: Path = src) -> None:
                link_or_copy(src, dest)

            jobs.append(Job(folder / name, src.stat().st_size, copy))
    if files.config is None:
        # No config.json means moshiko v0.1: another architecture's config must not stay.
        (folder / CONFIG_FILE).unlink(missing_ok=True)
    check_disk(jobs, None)
    run_jobs(jobs, progress)

    def copied(name: str) -> Path | None:
        return None if copies[name] is None else folder / name

    return CheckpointFolder(
        folder=folder,
        config_name=next((n for n, c in PRESET_CONFIGS.items() if c == config), "custom"),
        config=config,
        quant=quant,
        model=model,
        mimi=copied(MIMI_FILE),
        text_tokenizer=copied(TEXT_TOKENIZER_FILE),
        config_file=copied(CONFIG_FILE),
        written=tuple(job.path for job in jobs),
        source=files.model,
    )
