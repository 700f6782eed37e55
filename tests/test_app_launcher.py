"""The app bundle's native launcher (scripts/app_launcher.c), built and run here with the
system's C compiler: it must start the configured Python as its *child* (so macOS keeps the app
as the responsible process for the microphone), tell it which bundle it runs as, forward the
signals that end an app, and exit as the child did. The macOS-only parts (finding its own path
through dyld, the alert) are behind __APPLE__; the rest is the same code as on the Mac."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "scripts" / "app_launcher.c"
BASH = shutil.which("bash") or "/bin/bash"
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


@pytest.fixture(scope="module")
def launcher_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CC is None:
        pytest.fail("no C compiler (cc, gcc or clang): the app's launcher cannot be built")
    out = tmp_path_factory.mktemp("launcher") / "moshi-assistant"
    build = subprocess.run(
        [CC, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    return out


class Bundle:
    """A "Moshi Assistant.app" folder around the launcher, with a fake Python."""

    def __init__(self, root: Path, binary: Path, python_body: str | None) -> None:
        self.path = root / "Moshi Assistant.app"
        self.exe = self.path / "Contents" / "MacOS" / "moshi-assistant"
        self.exe.parent.mkdir(parents=True)
        shutil.copy(binary, self.exe)
        self.log = root / "python.log"
        self.python = root / "venv" / "bin" / "python"
        resources = self.path / "Contents" / "Resources"
        resources.mkdir()
        if python_body is not None:
            self.python.parent.mkdir(parents=True)
            self.python.write_text(
                f"#!{BASH}\n"
                f'echo "pid $$ ppid $PPID" >> {self.log}\n'
                f'echo "args $*" >> {self.log}\n'
                f'echo "app $MOSHI_ASSISTANT_APP" >> {self.log}\n' + python_body + "\n"
            )
            self.python.chmod(0o755)
        self.config = resources / "launcher.conf"
        self.config.write_text(f"python={self.python}\narg=-m\narg=assistant\narg=menubar\n")

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def start(self, *args: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k != "MOSHI_ASSISTANT_APP"}
        return subprocess.Popen([str(self.exe), *args], stderr=subprocess.PIPE, text=True, env=env)

    def wait_for(self, line: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.lines():
            assert time.monotonic() < deadline, f"the fake Python never logged {line!r}"
            time.sleep(0.02)


def test_python_runs_as_a_child_with_the_bundle_named(tmp_path: Path, launcher_binary) -> None:
    bundle = Bundle(tmp_path, launcher_binary, "exit 0")
    proc = bundle.start("--extra", "-psn_0_12345")
    assert proc.wait(timeout=30) == 0
    pid_line, args_line, app_line = bundle.lines()
    child, parent = (int(x) for x in pid_line.split()[1::2])
    # A child (not exec'd in place): macOS keeps the app as the responsible process.
    assert parent == proc.pid and child != proc.pid
    # The configured arguments, then the app's own (LaunchServices' -psn_ ones dropped).
    assert args_line == "args -m assistant menubar --extra"
    assert app_line == f"app {bundle.path}"


def test_the_exit_status_is_the_childs(tmp_path: Path, launcher_binary) -> None:
    bundle = Bundle(tmp_path, launcher_binary, "exit 7")
    assert bundle.start().wait(timeout=30) == 7


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_are_forwarded_to_python(
    tmp_path: Path, launcher_binary, sig: signal.Signals
) -> None:
    name = sig.name[3:]
    body = (
        f"trap 'echo got-{name} >> {tmp_path / 'python.log'}; exit 3' {name}\n"
        f"echo ready >> {tmp_path / 'python.log'}\n"
        "while :; do sleep 0.05; done"
    )
    bundle = Bundle(tmp_path, launcher_binary, body)
    proc = bundle.start()
    bundle.wait_for("ready")
    proc.send_signal(sig)  # e.g. logout or Activity Monitor's Quit: to the app, not Python
    assert proc.wait(timeout=30) == 3  # Python handled it and exited; the app followed
    assert f"got-{name}" in bundle.lines()


def test_a_child_killed_by_a_signal_takes_the_launcher_with_it(
    tmp_path: Path, launcher_binary
) -> None:
    bundle = Bundle(tmp_path, launcher_binary, "kill -KILL $$")
    assert bundle.start().wait(timeout=30) == -signal.SIGKILL


def test_no_python_says_what_to_run(tmp_path: Path, launcher_binary) -> None:
    bundle = Bundle(tmp_path, launcher_binary, None)  # the venv was deleted
    proc = bundle.start()
    assert proc.wait(timeout=30) == 1
    assert proc.stderr is not None
    assert proc.stderr.read().strip() == (
        f"Moshi Assistant: no Python at {bundle.python}. Run scripts/setup.sh in the checkout, "
        "then scripts/build_app.sh again."
    )


def test_no_config_says_to_rebuild(tmp_path: Path, launcher_binary) -> None:
    bundle = Bundle(tmp_path, launcher_binary, "exit 0")
    bundle.config.unlink()
    proc = bundle.start()
    assert proc.wait(timeout=30) == 1
    assert proc.stderr is not None
    message = proc.stderr.read()
    assert f"cannot read {bundle.config}" in message and "scripts/build_app.sh" in message
    assert bundle.lines() == []


SETPRIV = shutil.which("setpriv")


@pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None, reason="runs the launcher as `nobody` (root, setpriv)"
)
def test_a_python_it_may_not_reach_is_a_permission_error(launcher_binary) -> None:
    """A checkout in a folder macOS protects answers EPERM/EACCES: said as such (where to
    allow it, or to move the checkout), not as a missing Python. Here: `nobody` and a venv
    folder only root may enter."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="launcher-perm-"))
    try:
        root.chmod(0o755)
        bundle = Bundle(root, launcher_binary, "exit 0")
        for folder in [bundle.exe.parent, bundle.exe.parent.parent, bundle.path]:
            folder.chmod(0o755)
        (bundle.path / "Contents" / "Resources").chmod(0o755)
        bundle.config.chmod(0o644)
        bundle.python.parent.parent.chmod(0o700)  # the protected folder
        nobody = [str(SETPRIV), "--reuid=65534", "--regid=65534", "--clear-groups"]
        proc = subprocess.run(
            [*nobody, str(bundle.exe)], capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 1, proc.stderr
        assert f"not allowed to run {bundle.python} (Permission denied)" in proc.stderr
        assert "Files and Folders" in proc.stderr and "no Python" not in proc.stderr
    finally:
        shutil.rmtree(root)
