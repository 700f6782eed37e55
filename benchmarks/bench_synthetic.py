"""What writing synthetic checkpoint files costs: CPU seconds (user + system) and per value.

    python -m benchmarks.bench_synthetic [--folder DIR] [--only mimi,stt,q4,bf16]

Each file is written to `--folder` (a temporary folder by default) and deleted at once:
- `mimi`: the 385 MB Mimi codec (96 M float32 normals);
- `stt`: the full-size speech-to-text model (stt-1b-en_fr, 1.98 GB of bf16 normals);
- `q4`: the full-size moshiko q4 model (4.8 GB, mostly random uint32; its bf16 scales and
  biases are uniform values);
- `bf16`: moshiko's first two layers at full width in bf16 (2.8 GB of normals): the full
  model's 15.4 GB costs about 5.5 times as much.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from assistant.checkpoint.config import MOSHIKO_V0_1
from assistant.checkpoint.layout import Q4
from assistant.checkpoint.stt_config import STT_CONFIGS
from assistant.checkpoint.synthetic.lm import write_lm
from assistant.checkpoint.synthetic.mimi import write_mimi
from assistant.checkpoint.synthetic.stt import write_stt_model


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


WRITERS: dict[str, Callable[[Path], object]] = {
    "mimi": lambda p: write_mimi(p),
    "stt": lambda p: write_stt_model(p, STT_CONFIGS["stt-1b-en_fr"]),
    "q4": lambda p: write_lm(p, MOSHIKO_V0_1, Q4),
    "bf16": lambda p: write_lm(p, dataclasses.replace(MOSHIKO_V0_1, num_layers=2), None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--only", default=",".join(WRITERS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        for name in args.only.split(","):
            path = Path(tmp) / f"{name}.safetensors"
            cpu, wall = _cpu(), time.perf_counter()
            WRITERS[name](path)
            cpu, wall = _cpu() - cpu, time.perf_counter() - wall
            size = path.stat().st_size
            path.unlink()
            print(
                f"{name:5} {size / 1e9:6.2f} GB: {cpu:6.1f} CPU-s ({cpu / size * 1e9:.2f} s/GB), "
                f"{wall:6.1f} s wall"
            )


if __name__ == "__main__":
    main()
