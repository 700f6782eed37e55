"""A session's timeline as a Chrome trace (Trace Event Format), for Perfetto or chrome://tracing.

One track per worker (encoder, model, decoder) with a span per frame for each stage; an
instant on the lag track each time the lag control drops a frame; counters for the queues,
the delay and memory. Written as it goes in the JSON Array Format, whose closing bracket is
optional: a session killed mid-way still leaves a trace Perfetto opens. Events reach the disk
at each flush, whole: a write that fails (a full disk) is cut back to the last flush, so the
file still opens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..files import AppendOnlyFile
from .metrics import Snapshot
from .records import FrameRecord

PID = 1
TRACKS = {"encoder": 1, "model": 2, "decoder": 3, "lag": 4}


class ChromeTrace:
    def __init__(self, path: Path, t0: float) -> None:
        """`t0`: the monotonic time that is 0 on the timeline (before the audio started)."""
        self.path = path
        self._file: AppendOnlyFile | None = AppendOnlyFile(path, truncate=True)
        self._t0 = t0
        self._first = True
        self._write({"ph": "M", "name": "process_name", "pid": PID, "args": {"name": "assistant"}})
        for name, tid in TRACKS.items():
            meta = {"ph": "M", "pid": PID, "tid": tid}
            self._write({**meta, "name": "thread_name", "args": {"name": name}})
            self._write({**meta, "name": "thread_sort_index", "args": {"sort_index": tid}})

    def frame(self, record: FrameRecord) -> None:
        """The frame's stage spans, its queue counters, and a lag instant if it was dropped."""
        args = {"frame": record.index}
        if record.model_step is not None:
            args["step"] = record.model_step
        spans = (
            ("encode", "encoder", record.encode_start, record.encode_end),
            ("step", "model", record.step_start, record.step_end),
            ("decode", "decoder", record.decode_start, record.decode_end),
        )
        for name, track, start, end in spans:
            if start is not None and end is not None:
                self._span(name, track, start, end, args)
        self._counter("queues", record.captured, model=record.model_queue_depth)
        if record.dropped:
            where = "before the model" if record.step_end is None else "before the speaker"
            self._write(
                {
                    "ph": "i",
                    "s": "t",
                    "name": f"dropped {where}",
                    "cat": "lag",
                    "pid": PID,
                    "tid": TRACKS["lag"],
                    "ts": self._ts(record.encode_end or record.step_end or record.captured),
                    "args": args,
                }
            )
        if record.heard is not None and record.queued_for_playout is not None:
            self._counter("queues", record.queued_for_playout, playout=record.playout_depth)
            self._counter("delay ms", record.heard, delay=round(record.delay_ms or 0.0, 2))

    def snapshot(self, at: float, snap: Snapshot) -> None:
        """Once a second: memory and the real-time factor."""
        mib = 1 << 20
        m = snap.memory
        self._counter(
            "memory MiB",
            at,
            mlx_active=round(m.mlx_active / mib, 1),
            mlx_cache=round(m.mlx_cache / mib, 1),
            rss=round(m.rss / mib, 1),
        )
        self._counter("real-time factor", at, rtf=round(snap.real_time_factor, 3))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is None:
            return
        file, self._file = self._file, None
        file.write("\n]\n")
        file.close()

    # --- internals ----------------------------------------------------------------------------
    def _span(self, name: str, track: str, start: float, end: float, args: dict) -> None:
        event = {"ph": "X", "name": name, "cat": "stage", "pid": PID, "tid": TRACKS[track]}
        event.update(ts=self._ts(start), dur=round((end - start) * 1e6, 1), args=args)
        self._write(event)

    def _counter(self, name: str, at: float, **values: float) -> None:
        self._write({"ph": "C", "name": name, "pid": PID, "ts": self._ts(at), "args": values})

    def _ts(self, t: float) -> float:
        return round((t - self._t0) * 1e6, 1)

    def _write(self, event: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(("[\n" if self._first else ",\n") + json.dumps(event))
        self._first = False


def read_trace(path: Path | str) -> list[dict[str, Any]]:
    """The events of a trace written here, closed or not (as a viewer would read it)."""
    text = Path(path).read_text(encoding="utf-8").rstrip()
    if not text.endswith("]"):
        text += "]"
    return json.loads(text)
