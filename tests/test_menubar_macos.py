"""The menu-bar app's macOS side, checked off a Mac: the LaunchAgent's launchctl calls, the
app bundle recipe, `assistant menubar` without macOS or rumps, and the rumps adapter against a
fake of the rumps API it calls."""

from __future__ import annotations

import os
import plistlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from assistant.app_settings import APP_BUNDLE_ID, load_settings
from assistant.errors import AssistantError, PlatformError
from assistant.menubar import app as menubar_app
from assistant.menubar.background import DRAIN_S, InlineCalls
from assistant.menubar.launch_agent import LABEL, LaunchAgent
from assistant.menubar.menu import POLL_S, MenuController
from tests.support.menubar_fakes import FakeClient

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("launchctl", [None, "/bin/launchctl"])
def test_disable_on_macos_unloads_best_effort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launchctl: str | None
) -> None:
    from assistant.menubar import launch_agent

    runs: list[list[str]] = []
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(launch_agent.shutil, "which", lambda name: launchctl)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: runs.append(cmd))
    monkeypatch.delenv("XPC_SERVICE_NAME", raising=False)
    agent = LaunchAgent(home=tmp_path, app=tmp_path / "Moshi Assistant.app")
    agent.enable()
    agent.disable()
    assert not agent.is_enabled()
    expected = [] if launchctl is None else [[launchctl, "bootout", f"gui/{os.getuid()}/{LABEL}"]]
    assert runs == expected
    # Started by that very job, booting it out would kill the app itself: left loaded.
    monkeypatch.setenv("XPC_SERVICE_NAME", LABEL)
    agent.enable()
    agent.disable()
    assert runs == expected and not agent.is_enabled()


# --- the command and the app ---------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "darwin", reason="checks the message off macOS")
def test_menubar_command_off_macos_is_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "menubar"],
        capture_output=True,
        text=True,
        env=os.environ | {"COLUMNS": "200"},
        timeout=120,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: the menu bar app is macOS-only; on Linux run `assistant serve` and open the "
        "dashboard with `assistant ctl open`"
    ]


def test_macos_without_rumps_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(menubar_app.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PlatformError, match=r'pip install -e "\.\[menubar\]"'):
        menubar_app.run_menubar()


def test_one_menu_bar_at_a_time() -> None:
    with menubar_app.single_instance():
        second = menubar_app.single_instance()
        with pytest.raises(AssistantError, match="already running"):
            second.__enter__()
    with menubar_app.single_instance():  # released on exit
        pass


def test_build_app_bundle(tmp_path: Path, isolated_settings: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ASSISTANT_HOME", "HF_HUB_CACHE")}
    env["HF_HOME"] = str(tmp_path / "models")  # the shell's: the app must get it
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "build_app.sh"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    contents = tmp_path / "Moshi Assistant.app" / "Contents"
    with (contents / "Info.plist").open("rb") as f:
        info = plistlib.load(f)
    assert info["CFBundleIdentifier"] == APP_BUNDLE_ID == "dev.moshi-assistant"
    assert info["CFBundleName"] == "Moshi Assistant"
    assert info["CFBundlePackageType"] == "APPL"
    assert info["LSUIElement"] is True
    assert "microphone" in info["NSMicrophoneUsageDescription"]
    assert info["LSMinimumSystemVersion"]
    launcher = contents / "MacOS" / info["CFBundleExecutable"]
    assert os.access(launcher, os.X_OK)
    # A native executable (Mach-O on a Mac, ELF here), not a script: see scripts/app_launcher.c.
    magic = launcher.read_bytes()[:4]
    assert magic in (b"\x7fELF", b"\xcf\xfa\xed\xfe"), magic
    assert (contents / "Resources" / "launcher.conf").read_text() == (
        f"python={REPO / '.venv' / 'bin' / 'python'}\narg=-m\narg=assistant\narg=menubar\n"
    )
    # The shell's folders are recorded for the app, which starts without them.
    assert load_settings(isolated_settings) == {"HF_HOME": str(tmp_path / "models")}
    # The launcher really runs the menu bar: off macOS that is its one-line refusal.
    if sys.platform != "darwin":
        run = subprocess.run([str(launcher)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 1 and "macOS-only" in run.stderr


def _build_app(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "build_app.sh"), "--out", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_build_app_without_the_command_line_tools_says_so(tmp_path: Path) -> None:
    """On a Mac without the Command Line Tools, /usr/bin/cc is a stub: `xcode-select -p` is
    asked first (here `uname` and `xcode-select` are stand-ins on PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in (("uname", "echo Darwin"), ("xcode-select", "exit 2")):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = _build_app(tmp_path, env=env)
    assert result.returncode == 1
    assert "xcode-select --install" in result.stderr and "Command Line Tools" in result.stderr
    assert not (tmp_path / "out").exists()


def test_build_app_warns_about_a_protected_folder(tmp_path: Path, isolated_settings: Path) -> None:
    home = tmp_path / "home"
    python = home / "Documents" / "moshi" / ".venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("ASSISTANT_HOME", "HF_HOME")}
    result = _build_app(tmp_path, "--python", str(python), env={**env, "HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert f"warning: {python} is in a folder macOS protects" in result.stderr
    clean = _build_app(tmp_path, env={**env, "HOME": str(home)})
    assert "protects" not in clean.stderr


# --- the rumps adapter, against a fake of the rumps API it uses ----------------------------------
class _NSMenuItem:
    def __init__(self) -> None:
        self.hidden = False

    def setHidden_(self, hidden: bool) -> None:
        self.hidden = hidden


class _RumpsMenuItem:
    def __init__(self, title: str, callback: Callable[[Any], None] | None = None) -> None:
        self.title, self.callback, self.state = title, callback, 0
        self.children: list[_RumpsMenuItem] = []
        self._menuitem = _NSMenuItem()

    def set_callback(self, callback: Callable[[Any], None] | None) -> None:
        self.callback = callback

    def add(self, item: _RumpsMenuItem) -> None:
        self.children.append(item)


class _RumpsApp:
    def __init__(self, name: str, title: str | None = None, quit_button: str | None = "Quit"):
        self.name, self.title, self.quit_button = name, title, quit_button
        self.menu: list[Any] = []


class _RumpsTimer:
    def __init__(self, callback: Callable[[Any], None], interval: float) -> None:
        self.callback, self.interval, self.started = callback, interval, False

    def start(self) -> None:
        self.started = True


@pytest.fixture
def fake_rumps(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import importlib
    import types

    rumps: Any = types.ModuleType("rumps")
    rumps.App, rumps.MenuItem, rumps.Timer = _RumpsApp, _RumpsMenuItem, _RumpsTimer
    rumps.posted = []

    def notification(title: str, subtitle: str, message: str) -> None:
        raise RuntimeError("Failed to setup the notification center")  # a bare venv python

    rumps.notification = notification
    rumps.quit_application = lambda: rumps.posted.append("quit")
    monkeypatch.setitem(sys.modules, "rumps", rumps)
    name = "assistant.menubar.rumps_toolkit"
    sys.modules.pop(name, None)
    rumps.toolkit_module = importlib.import_module(name)  # bound to this fake
    yield rumps
    sys.modules.pop(name, None)


def test_rumps_adapter_builds_the_menu(
    fake_rumps: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toolkit = fake_rumps.toolkit_module.RumpsToolkit("Moshi Assistant")
    client = FakeClient()
    controller = MenuController(
        toolkit, connect=lambda: client, agent=LaunchAgent(home=tmp_path), calls=InlineCalls()
    )
    controller.launch()
    app = toolkit.app
    assert app.quit_button is None and app.title == "Moshi ○"
    timer, drain = toolkit._timers
    assert timer.started and timer.interval == POLL_S
    assert drain.started and drain.interval == DRAIN_S
    titles = [None if e is None else e.title for e in app.menu]
    assert titles[:4] == ["Idle · moshiko q4", None, "Start conversation", "Stop conversation"]
    state, start, stop = app.menu[0], app.menu[2], app.menu[3]
    assert state.callback is None and stop.callback is None  # rumps greys these out
    quants = app.menu[5]
    assert [c.title for c in quants.children] == ["q4", "q8", "bf16"]
    assert [c.state for c in quants.children] == [1, 0, 0]
    assert quants.children[2]._menuitem.hidden
    start.callback(start)  # rumps passes the sender
    assert client.actions == [("start",)] and stop.callback is not None
    timer.callback(timer)
    assert app.title == "Moshi ●"
    # No notification centre: AppleScript posts it instead.
    commands: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: commands.append(cmd))
    toolkit.notify("Could not switch to q8", "not downloaded")
    assert commands[0][0] == "osascript"
    assert commands[0][-3:] == ["Moshi Assistant", "Could not switch to q8", "not downloaded"]
    app.menu[-1].callback(app.menu[-1])
    assert fake_rumps.posted == ["quit"]


def test_as_the_app_notifications_take_its_identity(
    fake_rumps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python started by the app's launcher has no bundle of its own: its main bundle takes the
    # app's identifier before rumps sets up the notification centre.
    import types

    info: dict[str, str] = {}
    foundation = types.ModuleType("Foundation")
    foundation.NSBundle = types.SimpleNamespace(  # type: ignore[attr-defined]
        mainBundle=lambda: types.SimpleNamespace(infoDictionary=lambda: info)
    )
    monkeypatch.setitem(sys.modules, "Foundation", foundation)
    fake_rumps.toolkit_module.RumpsToolkit("Moshi Assistant")
    assert info == {}  # from a terminal: nothing to take
    fake_rumps.toolkit_module.RumpsToolkit("Moshi Assistant", bundle_id=APP_BUNDLE_ID)
    assert info == {"CFBundleIdentifier": "dev.moshi-assistant", "CFBundleName": "Moshi Assistant"}


# --- signals: nothing outlives the app ----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_app_stops_the_service_it_started(signum: int) -> None:
    """The app (on the stand-in toolkit, as a real process) starts the real service; SIGTERM
    (what the launcher forwards when the app is killed) or SIGINT takes the Quit path: the
    service it started ends too, and no process of theirs is left."""
    app = subprocess.Popen(
        [sys.executable, "-m", "tests.support.menubar_standin_app"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    service = None
    lines: list[str] = []
    try:
        assert app.stdout is not None
        for line in app.stdout:  # ends when the app exits
            lines.append(line)
            if line.startswith("attached "):
                service = psutil.Process(int(line.split()[1]))
                break
        assert service is not None, "".join(lines)
        assert service.is_running() and app.poll() is None
        app.send_signal(signum)
        assert app.wait(timeout=60) == 0, "".join(lines) + app.stdout.read()
        assert "quit" in app.stdout.read()
        service.wait(timeout=30)  # psutil: gone (it was not our child: it has its own session)
        assert not service.is_running()
    finally:  # whatever failed, end what is left, by PID
        if app.poll() is None:
            app.kill()
            app.wait()
        if service is not None and service.is_running():
            service.kill()
