"""The report's tables, built once and shown two ways: rich on screen, Markdown in the file."""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table

from .results import BenchRun, VariantResult


@dataclass(frozen=True)
class Section:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]


def sections(run: BenchRun) -> list[Section]:
    results = run.ordered
    if not results:
        return []
    ref = run.reference
    return [
        Section(
            "Size, load (cold/warm) and memory",
            ("variant", "quant", "bits/w", "size", "load s", "MLX peak", "RSS peak"),
            [_load_row(r, ref) for r in results],
        ),
        Section(
            "Speed in ms (RTF: mean step / 80 ms frame)",
            ("variant", "step p50", "p95", "p99", "mean", "RTF", "decode/frame"),
            [_speed_row(r, ref) for r in results],
        ),
        Section(
            f"Fidelity against {ref} (teacher-forced)",
            ("variant", "text tokens agree", "audio tokens agree", "text KL (nats)"),
            [_fidelity_row(r, ref) for r in results],
        ),
    ]


def headline(run: BenchRun) -> list[str]:
    """What every variant was given, in a few lines (above the tables)."""
    s, sp = run.settings, run.speech
    sampling = s.sampling
    how = (
        "greedy"
        if sampling.is_greedy
        else f"text T {sampling.text_temperature} top-k {sampling.text_top_k}, audio "
        f"T {sampling.audio_temperature} top-k {sampling.audio_top_k}"
    )
    looped = ", looped" if s.total_steps > sp.frames else ""
    lines = [
        f"Input: {sp.source} ({sp.seconds:.1f} s, {sp.frames} frames{looped}); Mimi encode "
        f"{sp.encode.mean:.1f} ms per frame (p95 {sp.encode.p95:.1f})",
        f"Steps: {s.warmup} warm-up + {s.steps} timed; sampling {how}, seed {sampling.seed}",
    ]
    if run.ordered:
        m = run.ordered[0].model
        c = m.config
        lines.append(
            f"Model: {count(m.parameter_count)} parameters (dim {c.dim}, {c.num_layers} layers); "
            f"reference {run.reference}"
        )
    return lines


def _name(r: VariantResult, reference: str | None) -> str:
    return f"{r.label} (ref)" if r.label == reference else r.label


def _load_row(r: VariantResult, ref: str | None) -> tuple[str, ...]:
    m, q = r.model, r.model.quantization
    quant = f"{m.quant_label} g{q.group_size}" if q else "bf16"
    return (
        _name(r, ref),
        quant,
        f"{m.bits_per_weight:.2f}",
        size(m.file_size),
        f"{r.cold_load_s:.2f}/{r.warm_load_s:.2f}",
        memory(r.mlx_peak),
        memory(r.rss_peak),
    )


def _speed_row(r: VariantResult, ref: str | None) -> tuple[str, ...]:
    t = r.steps
    return (
        _name(r, ref),
        f"{t.p50:.1f}",
        f"{t.p95:.1f}",
        f"{t.p99:.1f}",
        f"{t.mean:.1f}",
        f"{r.real_time_factor:.2f}",
        f"{r.decode.mean:.1f}" if r.decode else "-",
    )


def _fidelity_row(r: VariantResult, ref: str | None) -> tuple[str, ...]:
    f = r.fidelity
    if f is None:
        return (_name(r, ref), "-", "-", "-")
    return (
        _name(r, ref),
        f"{f.text_agreement:.1f} %",
        f"{f.audio_agreement:.1f} %",
        f"{f.kl_mean:.4g}",
    )


def render(run: BenchRun, console: Console) -> None:
    for s in sections(run):
        table = Table(title=s.title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for i, h in enumerate(s.headers):
            table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for row in s.rows:
            table.add_row(*row)
        console.print(table)


def markdown(s: Section) -> str:
    lines = [
        "| " + " | ".join(s.headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(s.headers) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in s.rows]
    return "\n".join(lines)


def size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def memory(n: int) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.2f} GiB"
    return f"{n / 1024**2:.0f} MiB"


def count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"
