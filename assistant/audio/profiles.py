"""Latency profiles: how small the device blocks are and how much cushion the speaker keeps.

Smaller blocks and a thinner cushion cut the delay from your voice to Moshi's answer; they also
leave less slack for a busy machine, so audio may glitch. `balanced` is the default, chosen by
measuring them (`benchmarks/bench_realtime.py --only delay`): 5 ms blocks kept the pass-through
delay 20 ms under 10 ms blocks on PulseAudio, with the same glitches; `safe` is for a machine
too busy for either.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..frames import SAMPLE_RATE
from .playout import JitterBounds


@dataclass(frozen=True)
class LatencyProfile:
    name: str
    block: int  # samples per PortAudio callback at 24 kHz (the device buffers two of them)
    jitter: JitterBounds

    @property
    def block_ms(self) -> float:
        return self.block * 1000.0 / SAMPLE_RATE

    def describe(self) -> str:
        j = self.jitter
        return (
            f"{self.name}: {self.block_ms:.0f} ms blocks, cushion {j.min_ms:.0f}-{j.max_ms:.0f} ms"
        )


PROFILES: dict[str, LatencyProfile] = {
    "low": LatencyProfile("low", 120, JitterBounds(min_ms=0.0, max_ms=40.0, start_ms=5.0)),
    "balanced": LatencyProfile(
        "balanced", 120, JitterBounds(min_ms=5.0, max_ms=80.0, start_ms=10.0)
    ),
    "safe": LatencyProfile("safe", 480, JitterBounds(min_ms=30.0, max_ms=160.0, grow_ms=20.0)),
}
DEFAULT_PROFILE = "balanced"


def latency_profile(name: str) -> LatencyProfile:
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise UsageError(
            f"unknown latency profile {name!r}; choose one of {', '.join(PROFILES)}"
        ) from None
