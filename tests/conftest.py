"""Shared fixtures. Every test runs against an empty, offline Hugging Face cache and an empty
assistant home (sessions, recordings) in temp folders."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants

from tests.support import leftovers, shared_files
from tests.support.warm_cli import FORK_OK, WarmStarter

# --- nothing the tests start outlives them (tests/support/leftovers.py) -------------------------
SESSION_MARK = pytest.StashKey[str]()
WORKER_LEFTOVERS = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SESSION_MARK] = leftovers.mark_session()
    # Run as a background job (`&` in a script, nohup) the tests inherit an ignored SIGINT, and
    # so would every program they start: the product keeps a signal its parent ignored ignored
    # (a background `assistant serve`), and every Ctrl-C test would fail. The tests are the
    # user's terminal here: Ctrl-C is theirs to send.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process the tests started is still running, and end it. A parallel
    worker (pytest-xdist) checks what it started and hands its findings to the controller,
    which reports them with its own and fails the run."""
    mark = session.config.stash.get(SESSION_MARK, None)
    left = leftovers.leftovers(mark) if mark else []
    lines: list[str] = []
    if left:
        lines = [f"{len(left)} process(es) started by the tests were still running (ended now):"]
        lines += [f"  {leftovers.describe(p)}" for p in left]
        leftovers.end(left)
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:  # an xdist worker: its controller reports
        worker_output["leftovers"] = lines
        return
    from_workers: list[str] = session.config.stash.get(WORKER_LEFTOVERS, [])
    lines += from_workers
    if not lines:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n" + "\n".join(lines), red=True, bold=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """(pytest-xdist, in the controller) A worker ended: keep what it found left running."""
    found = getattr(node, "workeroutput", {}).get("leftovers") or []
    node.config.stash.setdefault(WORKER_LEFTOVERS, []).extend(found)


# --- why a test was rerun (pytest-rerunfailures only names it) -------------------------------
_rerun_reasons: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if str(report.outcome) == "rerun":  # (in the controller too: xdist forwards the reports)
        lines = [line[1:].strip() for line in report.longreprtext.splitlines() if line[:2] == "E "]
        _rerun_reasons.append(f"{report.nodeid}: " + " / ".join(lines[:6]))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _rerun_reasons:
        terminalreporter.write_sep("=", "why tests were rerun")
        for line in _rerun_reasons:
            terminalreporter.write_line(line[:1000])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests on real audio devices are real-time: scripts/test.sh runs them one at a time at
    normal priority, the others beside them at the lowest (nice 19), so that no other test
    takes CPU they need."""
    for item in items:
        if "pulse" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realtime)
    # Files with slow cases first (their order otherwise kept): handed out one file at a time to
    # the parallel workers (scripts/test.sh), the long ones are not left for the end, when one
    # worker would run them while the other has nothing left.
    has_slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in has_slow)  # (a stable sort)


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the hub cache at a fresh temp folder and forbid network access by default."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path_factory.mktemp("assistant_home")))
    return home / "hub"


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A settings file of the test's own (none there): never the user's real one."""
    path = tmp_path_factory.mktemp("settings") / "settings.json"
    monkeypatch.setenv("ASSISTANT_SETTINGS", str(path))
    return path


# --- synthetic checkpoints (shared, session-scoped: treat their files as read-only) -----------


@pytest.fixture(scope="session")
def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the files every test process of the run shares are made, once
    (tests/support/shared_files.py)."""
    return shared_files.run_folder(tmp_path_factory)


@pytest.fixture(scope="session")
def mimi_file(shared_folder: Path) -> Path:
    """A random full-size Mimi codec in the published naming (seed 0), 385 MB, written once
    a run. Do not modify it: the tiny checkpoints hard-link it."""
    from assistant.checkpoint.synthetic.checkpoint import cached_mimi_path
    from assistant.checkpoint.synthetic.mimi import write_mimi
    from assistant.checkpoint.writing import atomic_write

    return shared_files.made_once(
        cached_mimi_path(shared_folder, seed=0),
        lambda path: atomic_write(path, lambda p: write_mimi(p, seed=0)),
    )


@pytest.fixture(scope="session")
def synthetic_cache(shared_folder: Path, mimi_file: Path) -> Path:
    """A `cache_dir` for `make_checkpoint`, its Mimi already there (so no test writes it)."""
    return shared_folder


@pytest.fixture(scope="session")
def tiny_checkpoint(synthetic_cache: Path) -> Callable[[str], Path]:
    """`tiny_checkpoint("q4" | "q8" | "bf16")` -> a tiny-config checkpoint folder (seed 0) laid
    out like a published repo, made once per label for the whole run. Copy it before modifying
    anything inside."""
    from assistant.checkpoint.synthetic.checkpoint import make_checkpoint
    from assistant.checkpoint.writing import parse_quant

    def make(quant_label: str = "q4") -> Path:
        quant = parse_quant(quant_label)  # (a bad label fails here, before any lock)
        return shared_files.made_once(
            synthetic_cache / f"tiny-{quant_label}",
            # A folder made aside and renamed when complete (make_checkpoint's staging).
            lambda folder: make_checkpoint(
                folder, config_name="tiny", quant=quant, cache_dir=synthetic_cache
            ),
        )

    return make


@pytest.fixture(scope="session")
def tiny_stt(synthetic_cache: Path) -> Path:
    """A tiny random-weight speech-to-text checkpoint in the published layout, made once for
    the whole run (staged and renamed when complete). Copy it before modifying anything."""
    from assistant.checkpoint.synthetic.stt import make_stt_checkpoint

    return shared_files.made_once(
        synthetic_cache / "tiny-stt",
        lambda folder: make_stt_checkpoint(folder, config_name="tiny", cache_dir=synthetic_cache),
    )


@pytest.fixture(scope="session")
def warm_starter() -> Iterator[WarmStarter | None]:
    """Starts `python -m assistant` in a fresh process forked from one that imported its
    libraries already (tests/support/warm_cli.py); None where forking is not safe (macOS)."""
    if not FORK_OK:
        yield None
        return
    starter = WarmStarter()
    try:
        yield starter
    finally:
        starter.close()


# --- PulseAudio virtual devices for the audio tests (tests/test_audio_*.py) -------------------


@pytest.fixture(scope="session")
def pulse():
    """A PulseAudio server of this test session's own, with virtual `vmic`/`vspk` devices
    (scripts/pulseaudio.sh), made the default for PortAudio. Its own: sessions running at the
    same time would otherwise hear each other. On Linux a server that can't start FAILS the
    tests that need it; macOS has no PulseAudio, so they are skipped there."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    from tests.support.pulse_harness import (
        PulseAudio,
        PulseError,
        reinit_portaudio,
        start_server,
        stop_server,
    )

    if sys.platform == "darwin":
        pytest.skip("real-device audio tests use PulseAudio virtual devices (Linux only)")
    runtime_dir = Path(tempfile.mkdtemp(prefix="pa-", dir="/tmp"))  # short: holds a socket
    saved = os.environ.get("PULSE_SERVER")
    try:
        env = start_server(runtime_dir)
    except (PulseError, OSError, subprocess.SubprocessError) as e:
        shutil.rmtree(runtime_dir, ignore_errors=True)
        pytest.fail(f"PulseAudio could not start for the audio tests: {e}", pytrace=False)
    os.environ.update(env)
    reinit_portaudio()  # PortAudio must see the server: (re)initialise it after start
    try:
        yield PulseAudio(env, runtime_dir)
    finally:
        if saved is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = saved
        try:
            stop_server(runtime_dir)
        finally:
            shutil.rmtree(runtime_dir, ignore_errors=True)
