"""What refusing NaN and infinite weights costs at load time, measured side by side.

    python -m benchmarks.bench_value_checks [--repeat 3] [--q4 DIR --bf16 DIR]

- the Mimi codec: its file read a chunk at a time and checked with numpy (the 385 MB synthetic
  Mimi, from the page cache and, on Linux, evicted from it first), against rustymimi's own load;
- the model: one reduction per float tensor of the evaluated MLX weights, on tiny q4 and bf16
  checkpoints against their load time, and on 1 GiB of bf16 arrays for the throughput that
  extrapolates to the full-size checkpoints (their float bytes come from the published layout).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import mlx.core as mx
import rustymimi

from assistant.bench.system import prepare_cold_load
from assistant.checkpoint.config import MOSHIKO_V0_1
from assistant.checkpoint.layout import PUBLISHED_QUANTIZATIONS, expected_tensors
from assistant.checkpoint.resolve import CheckpointSpec, resolve
from assistant.checkpoint.safetensors_reader import read_header
from assistant.checkpoint.synthetic.checkpoint import make_checkpoint
from assistant.checkpoint.values import scan_cost_bytes, scan_values
from assistant.checkpoint.writing import parse_quant
from assistant.errors import CodecFileError
from assistant.voice.loader import check_parameters, load, value_state

FLOATS = ("BF16", "F16", "F32")


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def mimi(folder: Path, repeat: int) -> None:
    path = resolve(CheckpointSpec(target=str(folder))).mimi
    assert path is not None
    header = read_header(path)
    size = scan_cost_bytes(header)
    warm = _median(lambda: scan_values(header, CodecFileError), repeat)
    cold_load = prepare_cold_load(path)
    started = time.perf_counter()
    scan_values(header, CodecFileError)
    cold = time.perf_counter() - started
    rusty = _median(lambda: rustymimi.Tokenizer(str(path), num_codebooks=8), repeat)
    print(f"Mimi codec file: {size / 1e6:.0f} MB of float32")
    print(f"  check, from the page cache: {warm * 1000:.0f} ms ({size / warm / 1e9:.2f} GB/s)")
    how = "evicted from the page cache" if "posix_fadvise" in cold_load.kind else cold_load.kind
    doubt = f"; {cold_load.doubt}" if cold_load.doubt else ""
    print(f"  check, cold ({how}{doubt}): {cold * 1000:.0f} ms")
    print(
        f"  rustymimi building one Tokenizer from it: {rusty * 1000:.0f} ms (one per codec worker)"
    )


def model(folders: dict[str, Path], repeat: int, mib: int = 1024) -> float:
    for label, folder in folders.items():
        loaded = load(resolve(CheckpointSpec(target=str(folder))))
        floats = sum(p.nbytes for _, p in _float_params(loaded.model))
        check = _median(lambda m=loaded.model: check_parameters(m), repeat)
        tensors = len(_float_params(loaded.model))
        print(
            f"tiny {label}: {tensors} float tensors, {floats / 1e6:.1f} MB; check "
            f"{check * 1000:.1f} ms against a load of {loaded.load_seconds * 1000:.0f} ms"
        )
    # Throughput on enough data to matter: 1 GiB of bf16 (by default) in 64 MiB tensors.
    count = max(1, mib // 64)
    arrays = [mx.random.normal((min(mib, 64) << 19,)).astype(mx.bfloat16) for _ in range(count)]
    mx.eval(arrays)
    total = sum(a.nbytes for a in arrays)

    def bits() -> None:
        mx.eval(mx.stack([value_state(a) for a in arrays]))

    def isfinite() -> None:
        mx.eval(mx.stack([mx.all(mx.isfinite(a)) for a in arrays]))

    seconds = _median(bits, repeat)
    plain = _median(isfinite, repeat)
    rate = total / seconds
    print(
        f"MLX check of {total / 2**20:.0f} MiB of bf16: {seconds * 1000:.0f} ms "
        f"({rate / 1e9:.2f} GB/s); all(isfinite(x)) instead: {plain * 1000:.0f} ms "
        f"({total / plain / 1e9:.2f} GB/s)"
    )
    return rate


def _float_params(m):
    from mlx.utils import tree_flatten

    return [(n, p) for n, p in tree_flatten(m.parameters()) if mx.issubdtype(p.dtype, mx.floating)]


def extrapolate(rate: float) -> None:
    print("Full-size moshiko (float bytes from the published layout; this CPU's rate):")
    for label, quant in PUBLISHED_QUANTIZATIONS.items():
        specs = expected_tensors(MOSHIKO_V0_1, quant).values()
        floats = sum(s.nbytes for s in specs if s.dtype in FLOATS)
        print(f"  {label}: {floats / 1e9:.2f} GB of floats -> ~{floats / rate:.1f} s here")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mib", type=int, default=1024, help="bf16 data for the throughput")
    parser.add_argument("--cache", type=Path, help="a make_checkpoint cache (its Mimi is reused)")
    parser.add_argument("--q4", type=Path, help="a tiny q4 checkpoint already made")
    parser.add_argument("--bf16", type=Path, help="a tiny bf16 checkpoint already made")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "cache"
        given = {"q4": args.q4, "bf16": args.bf16}
        folders = {
            q: given[q]
            or make_checkpoint(
                Path(tmp) / q, config_name="tiny", quant=parse_quant(q), cache_dir=cache
            ).folder
            for q in ("q4", "bf16")
        }
        mimi(folders["q4"], args.repeat)
        rate = model(folders, args.repeat, args.mib)
        extrapolate(rate)


if __name__ == "__main__":
    main()
