"""`assistant latency`'s report: the path outside the computer, from the clicks' round trips
and the loop's own figure (the real-device run is in tests/test_realtime_audio.py)."""

from __future__ import annotations

from assistant.conversation.latency_check import ClickTrip, LatencyReport


def report(trips: list[ClickTrip], loop_p50: float | None = 150.0) -> LatencyReport:
    return LatencyReport(
        mode="clicks",
        profile="balanced",
        blocks_ms={},
        device_latency_ms={"input": 10.0, "output": 10.0},
        seconds=8.0,
        trips=trips,
        clicks_sent=len(trips),
        loop_delay_p50_ms=loop_p50,
    )


def test_each_click_is_set_against_the_loop_delay_of_its_own_frame() -> None:
    # The loop's delay moved mid-run (the cushion grew after a stall): 110 ms, then 300 ms.
    # Each click came back 100 ms after its frame's figure; the run's medians of the two
    # (210 ms round trip against a loop p50 of 150 ms) would say 60.
    delays = [110.0, 110.0, 110.0, 300.0, 300.0]
    trips = [ClickTrip(i, d + 100.0 - 20.0, 20.0, loop_delay_ms=d) for i, d in enumerate(delays)]
    r = report(trips)
    assert r.round_trip_p50_ms == 210.0
    assert r.outside_ms == 100.0


def test_without_the_frames_figures_the_medians_are_compared() -> None:
    trips = [ClickTrip(i, 180.0, 20.0) for i in range(3)]  # their frames were never heard
    assert report(trips).outside_ms == 50.0
    assert report([]).outside_ms is None
    assert report(trips, loop_p50=None).outside_ms is None
