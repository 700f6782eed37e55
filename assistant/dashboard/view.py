"""The terminal dashboard's picture: pure functions from figures to rich renderables.

Sized for an 80x24 terminal: the model, latency per stage against the budget with recent
history, loop health, then the transcript in whatever rows are left. Smaller
terminals get a two-line digest instead of a broken layout.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..frames import FRAME_MS, FRAME_RATE
from ..telemetry.metrics import Snapshot, StageStats
from ..telemetry.model_card import ModelCard, format_bytes

MIN_WIDTH, MIN_HEIGHT = 80, 24
SPARKS = "▁▂▃▄▅▆▇█"
STAGE_LABELS = {
    "encode": "encode",
    "step": "model step",
    "decode": "decode",
    "delay": "mic→speaker",
}


def render(
    card: ModelCard,
    snap: Snapshot,
    transcript: str,
    *,
    width: int,
    height: int,
    max_delay_ms: float,
    status: str = "",
) -> RenderableType:
    """The whole dashboard for a `width` x `height` terminal, in `height - 1` rows (a live
    area as tall as the terminal would scroll it on every redraw): the model (4 rows),
    latency (7), loop health (5), and the transcript in the rest."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        return _digest(snap, width, height, max_delay_ms)
    height -= 1
    header = Panel(
        Text(card.line(), overflow="fold"),
        title=f"[bold]{card.label}[/]",
        title_align="left",
        subtitle=status or None,
        subtitle_align="right",
        height=4,
    )
    latency = Panel(
        _latency_table(snap, max_delay_ms),
        title=f"latency (ms), last {snap.stages['step'].window.count / FRAME_RATE:.0f} s",
        title_align="left",
        subtitle=_budget_line(snap, max_delay_ms),
        subtitle_align="right",
        height=7,
    )
    health = Panel(_health(snap, max_delay_ms), title="loop", title_align="left", height=5)
    rows = max(height - 4 - 7 - 5, 3)
    words = Panel(
        _tail(transcript, width - 4, rows - 2),
        title="Moshi says",
        title_align="left",
        height=rows,
    )
    return Group(header, latency, health, words)


def _budget_line(snap: Snapshot, max_delay_ms: float) -> str:
    line = f"budget {FRAME_MS:.0f} ms/frame, {max_delay_ms:.0f} ms mic→speaker"
    path = snap.audio_path
    if "cushion_ms" in path:
        line += f" · {path['profile']}, cushion {path['cushion_ms']:.0f} ms"
    elif path.get("profile") == "file":
        line += " · file: no real-time delay"
    return line


def sparkline(values: list[float], width: int, ceiling: float) -> str:
    """The last `width` values as block characters, full height at `ceiling` or more."""
    if not values or ceiling <= 0:
        return ""
    out = []
    for v in values[-width:]:
        level = min(max(v / ceiling, 0.0), 1.0)
        out.append(SPARKS[min(int(level * len(SPARKS)), len(SPARKS) - 1)])
    return "".join(out)


def budget_bar(value: float, budget: float, width: int) -> Text:
    """A bar of `value` against `budget`, coloured by how close it comes."""
    share = value / budget if budget > 0 else 0.0
    filled = min(round(share * width), width)
    return Text("█" * filled + "░" * (width - filled), style=_level_style(share))


# --- pieces --------------------------------------------------------------------------------------
def _latency_table(snap: Snapshot, max_delay_ms: float) -> Table:
    table = Table(box=None, expand=True, pad_edge=False, padding=(0, 1))
    table.add_column("stage", no_wrap=True, width=11)
    for name in ("last", "p50", "p95", "p99"):
        table.add_column(name, justify="right", no_wrap=True, width=6)
    table.add_column("p95/budget", no_wrap=True, width=10)
    table.add_column("history", no_wrap=True, ratio=1)
    for name, label in STAGE_LABELS.items():
        stage = snap.stages[name]
        budget = max_delay_ms if name == "delay" else FRAME_MS
        table.add_row(
            label,
            _ms(stage.last),
            _ms(stage.window.p50 if stage.window.count else None),
            _styled_ms(stage, budget),
            _ms(stage.window.p99 if stage.window.count else None),
            budget_bar(stage.window.p95, budget, 10),
            Text(sparkline(snap.history.get(name, []), 18, budget), style="cyan"),
        )
    return table


def _health(snap: Snapshot, max_delay_ms: float) -> Text:
    rtf = snap.real_time_factor
    f, a, m = snap.frames, snap.audio, snap.memory
    state = "keeping up" if rtf < 1.0 else "slower than real time"
    text = Text()
    text.append(f"real-time factor {rtf:.2f} · {state}", style=_level_style(rtf))
    delay = snap.stages["delay"].window
    text.append(
        f" · bottleneck {snap.bottleneck} · delay p95 {delay.p95:.0f}/{max_delay_ms:.0f} ms\n"
    )
    text.append(
        f"dropped {f.dropped_input} in, {f.dropped_output} out", style="red" if f.dropped else ""
    )
    text.append(f" · underruns {a.get('underruns', 0)} · overruns {a.get('overruns', 0)}")
    text.append(f" · queue {snap.model_queue}+{snap.playout_queue} · ")
    aec = "off" if snap.echo_reduction_db is None else f"{snap.echo_reduction_db:.0f} dB"
    text.append(f"AEC {aec}\n")
    text.append(
        f"memory MLX {format_bytes(m.mlx_active)}, cache {format_bytes(m.mlx_cache)} · "
        f"RSS {format_bytes(m.rss)} · {_clock(snap.elapsed_s)} · "
        f"metrics {snap.collection_share_of_budget:.2%} of budget",
        style="dim",
    )
    return text


def _digest(snap: Snapshot, width: int, height: int, max_delay_ms: float) -> Text:
    step, delay = snap.stages["step"].window, snap.stages["delay"].window
    return Text(
        f"step p95 {step.p95:.0f} ms · delay p95 {delay.p95:.0f}/{max_delay_ms:.0f} ms · "
        f"RTF {snap.real_time_factor:.2f} · dropped {snap.frames.dropped}\n"
        f"(the dashboard needs {MIN_WIDTH}x{MIN_HEIGHT}; this terminal is {width}x{height})",
        overflow="ellipsis",
        no_wrap=False,
    )


def _tail(transcript: str, width: int, rows: int) -> Text:
    """The last `rows` lines of the transcript once wrapped at `width`."""
    lines: list[str] = []
    for paragraph in transcript.split("\n"):
        paragraph = paragraph.strip()
        while len(paragraph) > width:
            cut = paragraph.rfind(" ", 0, width + 1)
            cut = cut if cut > 0 else width
            lines.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip()
        lines.append(paragraph)
    return Text("\n".join(lines[-rows:]) if rows > 0 else "")


def _styled_ms(stage: StageStats, budget: float) -> Text:
    if not stage.window.count:
        return Text("-")
    return Text(f"{stage.window.p95:.1f}", style=_level_style(stage.window.p95 / budget))


def _level_style(share: float) -> str:
    return "green" if share < 0.75 else "yellow" if share < 1.0 else "bold red"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
