"""The warm starter (tests/support/warm_cli.py) gives what a fresh `python -m assistant` gives."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from tests.support.warm_cli import FORK_OK, WarmStarter, run_assistant

pytestmark = pytest.mark.skipif(not FORK_OK, reason="the corpora start plain processes here")


def test_same_exit_code_and_output_as_a_fresh_interpreter(
    warm_starter: WarmStarter, tmp_path: Path
) -> None:
    env = os.environ | {"ASSISTANT_HOME": str(tmp_path / "home"), "COLUMNS": "100"}
    (tmp_path / "here.wav").write_bytes(b"RIFF")
    for args in (["--version"], ["info", "no-such-folder"], ["chat", "--frames", "x"]):
        warm = run_assistant(warm_starter, args, env=env, timeout=60, cwd=tmp_path)
        cold = run_assistant(None, args, env=env, timeout=60, cwd=tmp_path)
        assert warm[:2] == cold[:2], args
    # The working folder is the request's: a relative path is found (and refused) there.
    code, out, _ = warm_starter.run(["transcribe", "here.wav"], env=env, timeout=60, cwd=tmp_path)
    assert code == 1 and "here.wav: unusable audio file" in out, out


def test_a_command_past_its_timeout_is_killed_with_what_it_started(
    warm_starter: WarmStarter, tmp_path: Path
) -> None:
    env = os.environ | {"ASSISTANT_HOME": str(tmp_path / "home")}
    args = ["serve", "--port", "0", "--no-preload"]
    code, _, seconds = warm_starter.run(args, env=env, timeout=3, cwd=tmp_path)
    assert code is None and 3 <= seconds < 30
    assert not _in_session(warm_starter.last_pid)


def _in_session(sid: int) -> list[psutil.Process]:
    """Live processes of session `sid`."""
    found = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (OSError, psutil.Error):
            continue
    return found
