"""The live terminal dashboard `assistant chat` shows while the conversation runs."""

from __future__ import annotations

import time

from rich.console import Console, RenderableType
from rich.live import Live

from ..conversation.transcript import SPEAKING_HOLD_S, Transcript
from ..telemetry.metrics import MetricsCollector
from ..telemetry.model_card import ModelCard
from .view import render


class LiveDashboard:
    """Redraws the dashboard a few times a second from the collector's snapshots.

    Use `start()` once the conversation runs and `stop()` after it; warnings are printed
    above the dashboard so they stay in the scroll-back.
    """

    def __init__(
        self,
        card: ModelCard,
        metrics: MetricsCollector,
        console: Console,
        *,
        max_delay_ms: float,
        refresh_per_second: float = 2.0,  # a redraw: ~2.2 ms on a slow CPU, 0.44% of frame time
    ) -> None:
        self.card, self.metrics, self.console = card, metrics, console
        self.max_delay_ms = max_delay_ms
        self.transcript = Transcript()
        self._last_text = 0.0
        self._live = Live(
            console=console,
            get_renderable=self.renderable,
            refresh_per_second=refresh_per_second,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def on_text(self, seconds: float, piece: str) -> None:
        self.transcript.add(seconds, piece)
        self._last_text = time.monotonic()

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}", soft_wrap=True)

    def renderable(self) -> RenderableType:
        width, height = self.console.size
        return render(
            self.card,
            self.metrics.snapshot(),
            self.transcript.text,
            width=width,
            height=height,
            max_delay_ms=self.max_delay_ms,
            status="speaking"
            if time.monotonic() - self._last_text < SPEAKING_HOLD_S
            else "listening",
        )

    def start(self) -> None:
        self._live.start(refresh=True)

    def stop(self) -> None:
        self._live.stop()
