"""PNG plots: step latency per variant, and step time across the conversation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..frames import FRAME_MS
from .report import LATENCY_PLOT, LISTENING_PLOT, STEPS_PLOT
from .results import BenchRun


def write_plots(run: BenchRun) -> list[Path]:
    """Both plots for the variants measured so far (none when nothing was measured)."""
    results = run.ordered
    if not results:
        return []
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    names = [f"{r.label}\n({r.model.quant_label})" for r in results]

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    # Whiskers at p1 and p99: the tail that decides whether the loop keeps up.
    ax.boxplot([r.timed_ms for r in results], whis=(1, 99), showmeans=True)
    ax.set_xticks(range(1, len(results) + 1), names)
    ax.axhline(FRAME_MS, color="tab:red", linestyle="--", linewidth=1, label="80 ms frame")
    ax.set_ylabel("ms per step")
    ax.set_title(f"Step latency, {run.settings.steps} steps after {run.settings.warmup} warm-up")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    latency = _save(fig, run.folder / LATENCY_PLOT)

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    for r in results:
        ax.plot(range(len(r.step_ms)), r.step_ms, linewidth=1, label=r.label)
    if run.settings.warmup:
        ax.axvspan(-0.5, run.settings.warmup - 0.5, color="grey", alpha=0.15, label="warm-up")
    ax.axhline(FRAME_MS, color="tab:red", linestyle="--", linewidth=1, label="80 ms frame")
    all_ms = [t for r in results for t in r.step_ms]
    if max(all_ms) > 20 * min(all_ms):
        ax.set_yscale("log")  # the first (compiling) step would flatten everything else
    ax.set_xlabel("step (80 ms frames)")
    ax.set_ylabel("ms")
    ax.set_title("Step time across the conversation")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    steps = _save(fig, run.folder / STEPS_PLOT)
    heard = [r for r in results if r.listening is not None and r.listening.wer is not None]
    if not heard:
        return [latency, steps]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    rates = [r.listening.wer * 100 for r in heard if r.listening and r.listening.wer is not None]
    ax.bar(range(len(heard)), rates, color="tab:blue")
    ax.set_xticks(range(len(heard)), [f"{r.label}\n({r.model.quant_label})" for r in heard])
    ax.set_ylabel("word error rate, %")
    meaningless = any(not (r.listening and r.listening.meaningful) for r in heard)
    ax.set_title(
        "Speech recognised in each variant's audio against its own text"
        + ("\n(random weights: meaningless here)" if meaningless else "")
    )
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    listening = _save(fig, run.folder / LISTENING_PLOT)
    return [latency, steps, listening]


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
