"""What the menu bar shows, computed from the service's live feed (no toolkit, no I/O).

The service reports idle, loading, listening, speaking or error; the app adds two states of
its own: `starting` (it launched `assistant serve` and waits for it) and `offline` (no
service answers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TITLE_PREFIX = "Moshi"
SYMBOLS = {
    "offline": "⊘",
    "starting": "◌",
    "loading": "◌",
    "idle": "○",
    "listening": "●",
    "speaking": "◉",
    "error": "⚠",
}
LABELS = {
    "offline": "Service not running",
    "starting": "Starting the service…",
    "loading": "Loading",
    "idle": "Idle",
    "listening": "Listening",
    "speaking": "Speaking",
    "error": "Error",
}
TALKING = ("listening", "speaking")
MUTED_MARK = "🔇"  # in the menu-bar title while the microphone is muted
ERROR_CHARS = 70  # a menu item stretches to its title: keep long errors readable


@dataclass(frozen=True)
class View:
    state: str
    voice: str | None = None
    quant: str | None = None
    muted: bool = False
    error: str | None = None
    step_ms: float | None = None  # p50 of the model step over the recent window
    start_pending: bool = False  # Start was clicked while the service or model was not ready

    @property
    def connected(self) -> bool:
        return self.state not in ("offline", "starting")

    @property
    def talking(self) -> bool:
        return self.state in TALKING


def view_of(
    status: dict[str, Any] | None,
    metrics: dict[str, Any] | None = None,
    *,
    starting: bool = False,
    start_pending: bool = False,
) -> View:
    """The view for a status (None: no service) and the latest metrics snapshot."""
    if status is None:
        return View("starting" if starting else "offline", start_pending=start_pending)
    state = str(status.get("state", "idle"))
    return View(
        state=state if state in SYMBOLS else "idle",
        voice=status.get("voice"),
        quant=status.get("quant"),
        muted=bool(status.get("muted")),
        error=status.get("error"),
        # Metrics outlive a conversation: show the latency only while one runs.
        step_ms=step_latency(metrics) if state in TALKING else None,
        start_pending=start_pending,
    )


def step_latency(metrics: dict[str, Any] | None) -> float | None:
    """The recent median model step (ms), or the last step before the window has any."""
    try:
        step = metrics["stages"]["step"]  # type: ignore[index]
        if step["window"]["count"]:
            return float(step["window"]["p50"])
        return None if step["last"] is None else float(step["last"])
    except (KeyError, TypeError, ValueError):
        return None


def title(view: View) -> str:
    """The menu-bar text, e.g. `Moshi ● 52 ms` (`Moshi ● 52 ms 🔇` when muted)."""
    text = f"{TITLE_PREFIX} {SYMBOLS[view.state]}"
    if view.step_ms is not None:
        text += f" {view.step_ms:.0f} ms"
    if view.muted:
        text += f" {MUTED_MARK}"
    return text


def state_line(view: View) -> str:
    """The first (disabled) menu item, e.g. `Listening · step 52 ms · microphone muted`."""
    if view.state == "error":
        line = f"Error: {shorten(view.error or 'unknown')}"
    elif view.state == "loading":
        line = f"Loading {view.voice} {view.quant}…"
    elif view.state == "idle":
        line = f"Idle · {view.voice} {view.quant}"
    else:
        line = LABELS[view.state]
    if view.step_ms is not None:
        line += f" · step {view.step_ms:.0f} ms"
    if view.muted:
        line += " · microphone muted"
    if view.start_pending:
        line += " · starts when ready"
    return line


def shorten(text: str, limit: int = ERROR_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
