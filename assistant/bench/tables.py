"""The report's tables, built once and shown two ways: rich on screen, Markdown in the file."""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table

from ..frames import FRAME_MS
from ..voice.sampling import SamplingConfig
from .results import BenchRun, VariantResult, sampling_label
from .timing import Timing


@dataclass(frozen=True)
class Section:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    notes: tuple[str, ...] = ()  # shown under the table


def sections(run: BenchRun) -> list[Section]:
    results = run.ordered
    if not results:
        return []
    ref = run.reference
    doubts = [f"{r.label}: {r.cold_load_doubt}" for r in results if r.cold_load_doubt]
    chat = run.settings.chat_sampling
    speed_notes = []
    if chat is not None and any(r.chat_step_ms is not None for r in results):
        speed_notes.append(
            "as chat: the steps timed again, free-running, with `assistant chat`'s default "
            f"sampling: {sampling_label(chat)}"
        )
    return [
        Section(
            "Size, load (cold/warm) and memory (each variant's own increase)",
            ("variant", "quant", "bits/w", "size", "load s", "MLX +peak", "RSS +peak"),
            [_load_row(r, ref) for r in results],
            tuple(f"* cold load unreliable, {d}" for d in doubts),
        ),
        Section(
            "Speed in ms (RTF: mean step / 80 ms frame)",
            ("variant", "sampling", "step p50", "p95", "p99", "mean", "RTF", "decode/frame"),
            [row for r in results for row in _speed_rows(r, ref, run.settings.sampling)],
            tuple(speed_notes),
        ),
        Section(
            f"Fidelity against {ref} (teacher-forced)",
            ("variant", "text tokens agree", "audio tokens agree", "text KL (nats)"),
            [_fidelity_row(r, ref) for r in results],
        ),
        Section(
            "Listening: speech recognition on each variant's audio against its own text",
            ("variant", "word error rate", "said", "heard"),
            [_listening_row(r, ref) for r in results],
            _listening_notes(run),
        ),
    ]


def _listening_row(r: VariantResult, ref: str | None) -> tuple[str, ...]:
    heard = r.listening
    if heard is None:
        return (_name(r, ref), "-", "", "")
    wer = "-" if heard.wer is None else f"{heard.wer * 100:.1f} %"
    return (_name(r, ref), wer, _clip(heard.said), _clip(heard.heard))


def _listening_notes(run: BenchRun) -> tuple[str, ...]:
    notes = []
    if run.listening_note:
        notes.append(f"listening {run.listening_note}")
    heard = [r.listening for r in run.ordered if r.listening is not None]
    if any(not h.meaningful for h in heard):
        notes.append(
            "random weights (a synthetic checkpoint or speech recogniser): the word error rate "
            "is meaningless here; it shows the measurement runs end to end"
        )
    return tuple(notes)


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


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
    doubt = "*" if r.cold_load_doubt else ""
    return (
        _name(r, ref),
        quant,
        f"{m.bits_per_weight:.2f}",
        size(m.file_size),
        f"{r.cold_load_s:.2f}{doubt}/{r.warm_load_s:.2f}",
        memory(r.mlx_increase),
        memory(r.rss_increase),
    )


def _speed_rows(
    r: VariantResult, ref: str | None, sampling: SamplingConfig
) -> list[tuple[str, ...]]:
    decode = f"{r.decode.mean:.1f}" if r.decode else "-"
    rows = [_speed_row(_name(r, ref), "greedy" if sampling.is_greedy else "sampled", r.steps)]
    if r.chat_steps is not None:
        rows.append(_speed_row("", "as chat", r.chat_steps))
    return [(*row, decode if i == 0 else "") for i, row in enumerate(rows)]


def _speed_row(name: str, sampling: str, t: Timing) -> tuple[str, ...]:
    return (
        name,
        sampling,
        f"{t.p50:.1f}",
        f"{t.p95:.1f}",
        f"{t.p99:.1f}",
        f"{t.mean:.1f}",
        f"{t.mean / FRAME_MS:.2f}",
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
        for note in s.notes:
            console.print(note, soft_wrap=True, markup=False)


def markdown(s: Section) -> str:
    lines = [
        "| " + " | ".join(s.headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(s.headers) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in s.rows]
    if s.notes:
        lines += [""] + [f"{note}  " for note in s.notes]
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
