"""The service's HTTP side under abuse, measured from outside: malformed requests, 500 at
once, idle connections, `quit`, and restarting on the same port.

    python -m benchmarks.bench_service [--before PATH] [--count 500] [--hold 30]

Runs `assistant serve --no-preload` from this checkout (and with --before, from another one,
e.g. a worktree of the previous version, with this checkout's virtualenv) and prints the
figures side by side. Every measurement is from another process: raw sockets, a status probe
ten times a second, and the service's connections and threads read from /proc (psutil).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.support.http_storm import (
    EXPECTED,
    ConnectionCounter,
    StatusProbe,
    exchange,
    quit_bytes,
    request_bytes,
    storm_from_a_process,
    unexpected,
)

HERE = Path(__file__).resolve().parents[1]

FAST_KINDS = [k for k in EXPECTED if k not in {"idle", "half_header", "kept_alive", "half_body"}]


class Service:
    """`assistant serve --no-preload` from `checkout`, in a home of its own."""

    def __init__(self, checkout: Path, home: Path, port: int = 0) -> None:
        self.checkout, self.home = checkout, home
        self.env = os.environ | {"ASSISTANT_HOME": str(home), "PYTHONPATH": str(checkout)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "serve", "--no-preload", "--port", str(port)],
            cwd=checkout,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = self._info()
            if info and info["pid"] == self.proc.pid:
                self.port, self.token = info["port"], info["token"]
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve from {checkout} exited {self.proc.returncode}")
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"serve from {checkout} did not start")

    def _info(self) -> dict | None:
        try:
            return json.loads((self.home / "service" / "service.json").read_text())
        except (OSError, ValueError):
            return None

    def quit(self) -> tuple[int | str, float]:
        """POST /api/quit on a raw socket: what came back, and seconds until the process ended."""
        outcome = exchange(self.port, quit_bytes(self.port, self.token), timeout=10)
        started = time.monotonic()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.close()
        return outcome.result, time.monotonic() - started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def storm(svc: Service, kinds: list[str], count: int, timeout: float) -> dict:
    """The storm from its own process, with the probe and the counters running meanwhile."""
    counter = ConnectionCounter(svc.proc.pid, svc.port)
    probe = StatusProbe(svc.port, svc.token)
    threads: list[int] = []
    done = threading.Event()

    def count_threads() -> None:
        while not done.wait(0.1):
            try:
                threads.append(psutil.Process(svc.proc.pid).num_threads())
            except psutil.Error:
                return

    sampler = threading.Thread(target=count_threads, daemon=True)
    for thread in (counter, probe, sampler):
        thread.start()
    started = time.monotonic()
    report = storm_from_a_process(
        svc.port,
        svc.token,
        kinds,
        count,
        timeout,
        cwd=HERE,
        env=os.environ | {"PYTHONPATH": str(HERE)},
    )
    took = time.monotonic() - started
    answers, samples = probe.stop(), counter.stop()
    done.set()
    sampler.join()
    seconds = [a.seconds for a in answers]
    answered = [a for a in answers if a.result == 200]
    return {
        "report": report,
        "took": took,
        "probes": len(answers),
        "probe_ok": len(answered),
        "probe_p50": statistics.median(seconds),
        "probe_max": max(seconds),
        "open_max": max(samples),
        "threads_max": max(threads) if threads else 0,
        "alive": svc.proc.poll() is None,
    }


def held_idle(svc: Service, n: int, hold_s: float) -> dict:
    """`n` connections that send nothing, held `hold_s`: how many the service still holds."""
    socks = [socket.create_connection(("127.0.0.1", svc.port), timeout=5) for _ in range(n)]
    counter = ConnectionCounter(svc.proc.pid, svc.port)
    time.sleep(hold_s)
    still = counter.count()
    threads = psutil.Process(svc.proc.pid).num_threads()
    for s in socks:
        s.close()
    return {"still_open": still, "threads": threads}


def restart(checkout: Path, home: Path, kill: bool) -> dict:
    """Start on a fixed port, leave connections behind, quit (or kill -9), start again at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    first = Service(checkout, home, port)
    kept = []
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(request_bytes("status", port, first.token))
        c.recv(65536)
        kept.append(c)
    if kill:
        first.close()
    else:
        first.quit()
    for c in kept:
        c.close()
    started = time.monotonic()
    try:
        second = Service(checkout, home, port)
    except RuntimeError as e:
        return {"ok": False, "why": str(e)}
    second.close()
    return {"ok": True, "seconds": time.monotonic() - started}


def measure(checkout: Path, count: int, timeout: float, hold_s: float = 30.0) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        home = Path(tmp)
        results: dict = {}
        svc = Service(checkout, home)
        try:
            results["malformed"] = storm(svc, FAST_KINDS, len(FAST_KINDS), timeout)
            results["storm"] = storm(svc, list(EXPECTED), count, timeout)
            results["idle"] = held_idle(svc, 200, hold_s)
            results["hold_s"] = hold_s
            results["quit"] = svc.quit()
        finally:
            svc.close()
        results["restart_after_quit"] = restart(checkout, home, kill=False)
        results["restart_after_kill"] = restart(checkout, home, kill=True)
        return results


def rows(r: dict) -> dict[str, str]:
    s, m = r["storm"], r["malformed"]["report"]
    out = {
        "malformed: kinds answered wrongly": ", ".join(f"{k} {v}" for k, v in unexpected(m).items())
        or "none",
        "storm: requests with a wrong outcome": str(
            sum(sum(v.values()) for v in unexpected(s["report"]).values())
        ),
        "storm: status probes answered 200": f"{s['probe_ok']}/{s['probes']}",
        "storm: status probe p50 / max (s)": f"{s['probe_p50']:.3f} / {s['probe_max']:.3f}",
        "storm: open connections, max": str(s["open_max"]),
        "storm: service threads, max": str(s["threads_max"]),
        "storm: took (s)": f"{s['took']:.1f}",
    }
    for kind in ("idle", "half_header", "kept_alive"):
        sec = s["report"]["seconds"].get(kind)
        res = s["report"]["outcomes"].get(kind)
        if sec:
            out[f"storm: {kind} ended after (s)"] = f"{sec['min']:.1f}-{sec['max']:.1f} {res}"
    held = f"200 idle held {r['hold_s']:g} s"
    out[f"{held}: still open"] = str(r["idle"]["still_open"])
    out[f"{held}: service threads"] = str(r["idle"]["threads"])
    result, exit_s = r["quit"]
    out["quit: answer / process ended after (s)"] = f"{result} / {exit_s:.2f}"
    for key in ("restart_after_quit", "restart_after_kill"):
        v = r[key]
        out[key.replace("_", " ")] = f"ok in {v['seconds']:.1f} s" if v["ok"] else "FAILED"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout to measure alongside")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--hold", type=float, default=30.0, help="idle connections held, seconds")
    args = parser.parse_args()
    columns: dict[str, Callable[[], dict]] = {}
    if args.before:
        before = args.before
        columns[f"before ({before})"] = lambda: measure(before, args.count, args.timeout, args.hold)
    columns["now"] = lambda: measure(HERE, args.count, args.timeout, args.hold)
    table = {name: rows(run()) for name, run in columns.items()}
    names = list(table)
    width = max(len(k) for k in table[names[-1]])
    print(f"{'':{width}}  " + "  |  ".join(names))
    for key in table[names[-1]]:
        print(f"{key:{width}}  " + "  |  ".join(table[n].get(key, "-") for n in names))


if __name__ == "__main__":
    main()
