"""The menu-bar app without a Mac: the menu built through a recording stand-in for rumps, the
service replaced by a scripted client, `assistant serve` by a fake process (all three in
tests/support/menubar_fakes.py)."""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant.app_settings import load_settings
from assistant.errors import AssistantError, UsageError
from assistant.menubar.background import DRAIN_S
from assistant.menubar.display import step_latency
from assistant.menubar.hotkey import describe, parse_hotkey
from assistant.menubar.launch_agent import LABEL, NOT_AS_APP, LaunchAgent
from assistant.menubar.menu import LOST_AFTER, POLL_S
from assistant.menubar.prefs import Prefs, load_prefs, prefs_file, save_prefs
from assistant.menubar.service_process import service_log
from assistant.paths import data_dir, sessions_dir
from tests.support.menubar_fakes import FakeClient, FakePopen, Harness, metrics


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[FakePopen]:
    processes: list[FakePopen] = []

    def popen(args: list[str], **kwargs: Any) -> FakePopen:
        processes.append(FakePopen(args, **kwargs))
        return processes[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    return processes


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., Harness]:
    return lambda client=None, app_bundle=None: Harness(tmp_path / "home", client, app_bundle)


# --- the menu ------------------------------------------------------------------------------------
def test_menu_structure_in_order(make_app: Callable[..., Harness]) -> None:
    app = make_app(FakeClient())
    assert app.tk.structure() == [
        "Idle · moshiko q4",
        "---",
        "Start conversation",
        "Stop conversation",
        "---",
        ("Quantization", ["q4", "q8", "bf16"]),
        ("Voice", ["moshiko", "moshika"]),
        "Mute microphone (⌃⌥M)",  # the global shortcut, shown where muting is
        "Listen first",
        "---",
        "Open dashboard",
        "Recent conversations",
        "Open recordings",
        "---",
        ("Preferences", ["Mute shortcut"]),
        "Launch at login",
        "---",
        "Quit Moshi Assistant",
    ]
    tk = app.tk
    assert tk.timers == [(POLL_S, app.controller.tick), (DRAIN_S, app.controller.drain)]
    assert not tk.menu[0].enabled  # the state line is information only
    assert tk.find("Start conversation").enabled and not tk.find("Stop conversation").enabled
    assert [tk.find("Quantization", q).checked for q in ("q4", "q8", "bf16")] == [1, 0, 0]
    assert tk.find("Quantization", "bf16").hidden and not tk.find("Quantization", "q8").hidden
    assert tk.find("Voice", "moshiko").checked and not tk.find("Voice", "moshika").checked
    assert not tk.find("Mute microphone (⌃⌥M)").checked and not tk.find("Launch at login").checked
    assert tk.find("Open dashboard").enabled and tk.find("Open recordings").enabled
    assert tk.find("Recent conversations").enabled
    shortcuts = tk.find("Preferences", "Mute shortcut").children
    assert [(c.title, c.checked) for c in shortcuts] == [
        ("⌃⌥M", True),
        ("⌃⌥Space", False),
        ("⌃⇧M", False),
        ("F5", False),
        ("Off", False),
    ]


@pytest.mark.parametrize(
    ("state", "title", "line"),
    [
        ("idle", "Moshi ○", "Idle · moshiko q4"),
        ("loading", "Moshi ◌", "Loading moshiko q4…"),
        ("listening", "Moshi ● 52 ms", "Listening · step 52 ms"),
        ("speaking", "Moshi ◉ 52 ms", "Speaking · step 52 ms"),
        ("error", "Moshi ⚠", "Error: the microphone vanished"),
    ],
)
def test_title_and_state_line_for_each_state(
    make_app: Callable[..., Harness], state: str, title: str, line: str
) -> None:
    client = FakeClient(state=state)
    client.metrics = metrics(p50=52.4)  # metrics outlive a conversation: shown only in one
    if state == "error":
        client.state["error"] = "the microphone vanished"
    app = make_app(client)
    app.tk.tick()
    assert (app.tk.title, app.tk.state_line) == (title, line)


def test_title_follows_the_live_latency_and_mute(make_app: Callable[..., Harness]) -> None:
    client = FakeClient(state="listening")
    app = make_app(client)
    app.tk.tick()
    assert app.tk.title == "Moshi ●"  # a conversation without frames yet: no number
    client.metrics = metrics(p50=61.6)
    client.state["muted"] = True
    app.tk.tick()
    assert app.tk.title == "Moshi ● 62 ms 🔇"
    assert app.tk.state_line == "Listening · step 62 ms · microphone muted"
    assert app.tk.find("Mute microphone (⌃⌥M)").checked


def test_step_latency_uses_the_window_median_then_the_last_step() -> None:
    assert step_latency(metrics(p50=48.0, count=3)) == 48.0
    assert step_latency(metrics(p50=0.0, count=0, last=70.0)) == 70.0
    assert step_latency(metrics(count=0, last=None)) is None
    assert step_latency(None) is None


def test_start_and_stop(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    app = make_app(client)
    app.tk.find("Start conversation").click()
    assert client.actions == [("start",)]
    assert app.tk.title == "Moshi ●"
    assert not app.tk.find("Start conversation").enabled
    app.tk.find("Stop conversation").click()
    assert client.actions == [("start",), ("stop",)]
    assert app.tk.find("Start conversation").enabled
    assert not app.tk.find("Stop conversation").enabled


def test_mute_toggles(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    app = make_app(client)
    mute = app.tk.find("Mute microphone (⌃⌥M)")
    mute.click()
    assert client.actions == [("mute", True)] and mute.checked
    mute.click()
    assert client.actions == [("mute", True), ("mute", False)] and not mute.checked


def test_switching_quantization_moves_the_checkmark(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    app = make_app(client)
    q4, q8 = app.tk.find("Quantization", "q4"), app.tk.find("Quantization", "q8")
    q8.click()
    assert client.actions == [("switch", None, "q8")]
    assert q8.checked and not q4.checked
    assert load_prefs() == Prefs("moshiko", "q8")  # what the next service started loads
    q8.click()
    assert client.actions == [("switch", None, "q8")]  # already chosen: no reload


def test_switching_voice(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    app = make_app(client)
    app.tk.find("Voice", "moshika").click()
    assert client.actions == [("switch", "moshika", None)]
    assert app.tk.find("Voice", "moshika").checked and not app.tk.find("Voice", "moshiko").checked
    assert app.tk.state_line == "Idle · moshika q4"


def test_bf16_is_shown_only_while_chosen(make_app: Callable[..., Harness]) -> None:
    app = make_app(FakeClient(quant="bf16"))
    bf16 = app.tk.find("Quantization", "bf16")
    assert bf16.checked and not bf16.hidden
    bf16.click()  # already chosen: nothing happens
    app.tk.find("Quantization", "q4").click()
    assert bf16.hidden and app.tk.find("Quantization", "q4").checked


def test_refused_switch_is_a_notification(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    client.refuse["switch"] = "cannot switch: model.q8.safetensors is not downloaded"
    app = make_app(client)
    app.tk.find("Quantization", "q8").click()  # must not raise
    assert app.tk.notifications == [
        (
            "Could not switch to q8",
            "the service refused: cannot switch: model.q8.safetensors is not downloaded",
        )
    ]
    assert app.tk.find("Quantization", "q4").checked
    assert not app.tk.find("Quantization", "q8").checked
    assert load_prefs() == Prefs()


def test_a_service_error_is_notified_once(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    app = make_app(client)
    client.state.update(state="error", error="Output device vanished")
    for _ in range(3):
        app.tk.tick()
    assert app.tk.notifications == [("Moshi Assistant error", "Output device vanished")]
    client.state.update(error="the model does not fit in memory")
    app.tk.tick()
    app.tk.tick()
    assert [m for _, m in app.tk.notifications] == [
        "Output device vanished",
        "the model does not fit in memory",
    ]
    # Cleared (a new start), then failing the same way again: that is news again.
    client.state.update(state="idle", error=None)
    app.tk.tick()
    client.state.update(state="error", error="the model does not fit in memory")
    app.tk.tick()
    assert len(app.tk.notifications) == 3


def test_a_conversations_warning_is_notified_once(make_app: Callable[..., Harness]) -> None:
    # The service has no terminal to print to: a silent microphone's hint (whom to allow in
    # System Settings) comes to the user as a notification.
    client = FakeClient(state="listening")
    app = make_app(client)
    hint = "the microphone gave only digital silence for 3.0 s; ... allow Moshi Assistant, ..."
    client.state["warnings"] = [hint]
    for _ in range(3):
        app.tk.tick()
    assert app.tk.notifications == [("Moshi Assistant", hint)]


def test_callbacks_never_raise(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    app = make_app(client)
    client.fail["start"] = RuntimeError("boom")
    app.tk.find("Start conversation").click()
    assert app.tk.notifications == [("Could not start", "RuntimeError: boom")]
    # A poll that keeps failing is reported once, not every second.
    client.fail["live"] = ValueError("bad JSON")
    for _ in range(3):
        app.tk.tick()
    assert app.tk.notifications[1:] == [("The menu bar could not update", "ValueError: bad JSON")]


def test_open_dashboard(make_app: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url))
    app = make_app(FakeClient())
    app.tk.find("Open dashboard").click()
    assert opened == ["http://127.0.0.1:8737/#token=secret-token"]


def test_recent_conversations_opens_the_conversations_page(
    make_app: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url))
    app = make_app(FakeClient())
    app.tk.find("Recent conversations").click()
    assert opened == ["http://127.0.0.1:8737/#view=conversations&token=secret-token"]


def test_open_recordings(make_app: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: commands.append(cmd))
    app = make_app(FakeClient())
    assert not sessions_dir().exists()
    app.tk.find("Open recordings").click()
    assert commands == [["open", str(sessions_dir())]]
    assert sessions_dir().is_dir()  # made if missing: `open` fails on a missing folder
    assert app.tk.notifications == []


def test_open_recordings_failure_is_a_notification(
    make_app: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(cmd: list[str], **kw: Any) -> None:
        raise FileNotFoundError(2, "No such file or directory", cmd[0])

    monkeypatch.setattr(subprocess, "run", missing)
    app = make_app(FakeClient())
    app.tk.find("Open recordings").click()
    [(title, message)] = app.tk.notifications
    assert title == "Could not open" and str(sessions_dir()) in message


# --- starting and quitting the service -----------------------------------------------------------
def test_no_service_starts_one_detached(
    make_app: Callable[..., Harness], spawned: list[FakePopen]
) -> None:
    app = make_app(None)
    [process] = spawned
    assert process.args == [
        sys.executable,
        "-m",
        "assistant",
        "serve",
        "--voice",
        "moshiko",
        "--quant",
        "q4",
    ]
    assert process.kwargs["start_new_session"] is True
    assert process.kwargs["stdin"] == subprocess.DEVNULL
    assert Path(process.kwargs["stdout"].name) == service_log()
    assert service_log().parent == data_dir() / "service"
    assert (app.tk.title, app.tk.state_line) == ("Moshi ◌", "Starting the service…")
    app.tk.tick()  # not answering yet: still waiting, nothing started twice
    assert len(spawned) == 1 and app.tk.state_line == "Starting the service…"

    app.client = FakeClient(pid=process.pid, state="loading")
    app.tk.tick()
    assert app.controller.owned and app.tk.title == "Moshi ◌"
    app.client.state["state"] = "idle"
    app.tk.tick()
    assert app.tk.title == "Moshi ○" and app.tk.notifications == []


def test_quit_stops_the_service_this_app_started(
    make_app: Callable[..., Harness], spawned: list[FakePopen]
) -> None:
    app = make_app(None)
    app.client = FakeClient(pid=spawned[0].pid)
    app.tk.tick()
    app.tk.find("Quit Moshi Assistant").click()
    assert app.client.actions == [("quit",)]
    assert app.tk.quit_called


def test_quit_stops_a_started_service_that_no_longer_answers(
    make_app: Callable[..., Harness], spawned: list[FakePopen]
) -> None:
    app = make_app(None)
    app.client = FakeClient(pid=spawned[0].pid)
    app.tk.tick()
    app.client.alive = False
    app.tk.find("Quit Moshi Assistant").click()
    assert app.client.actions == [("quit",)] and spawned[0].terminated and app.tk.quit_called


def test_quit_leaves_a_service_started_elsewhere(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    app = make_app(client)
    app.tk.find("Quit Moshi Assistant").click()
    assert client.actions == [] and app.tk.quit_called


def test_a_service_started_elsewhere_meanwhile_is_not_ours(
    make_app: Callable[..., Harness], spawned: list[FakePopen]
) -> None:
    app = make_app(None)
    app.client = FakeClient(pid=spawned[0].pid + 1)  # e.g. `assistant serve` in a terminal
    app.tk.tick()
    assert app.tk.title == "Moshi ○" and not app.controller.owned
    app.tk.find("Quit Moshi Assistant").click()
    assert app.client.actions == [] and app.tk.quit_called


def test_quit_while_the_service_starts_stops_the_process(
    make_app: Callable[..., Harness], spawned: list[FakePopen]
) -> None:
    app = make_app(None)
    app.tk.find("Quit Moshi Assistant").click()
    assert spawned[0].terminated and app.tk.quit_called


def test_a_service_that_exits_is_explained(
    make_app: Callable[..., Harness], spawned: list[FakePopen]
) -> None:
    app = make_app(None)
    with service_log().open("a") as log:
        log.write("error: port 8737 on 127.0.0.1 is already in use by another program\n")
    spawned[0].returncode = 1
    app.tk.tick()
    app.tk.tick()
    [(title, message)] = app.tk.notifications
    assert title == "The assistant service did not start"
    assert "exited (code 1)" in message and "port 8737" in message and str(service_log()) in message
    assert app.tk.title == "Moshi ⊘" and app.tk.state_line == "Service not running"
    assert app.tk.find("Start conversation").enabled


def test_a_service_that_never_answers_is_stopped(
    make_app: Callable[..., Harness], spawned: list[FakePopen]
) -> None:
    app = make_app(None)
    app.now = 29.0
    app.tk.tick()
    assert app.tk.notifications == [] and not spawned[0].terminated
    app.now = 31.0
    app.tk.tick()
    assert spawned[0].terminated
    [(_, message)] = app.tk.notifications
    assert "did not answer within 30 s" in message


def test_start_before_the_service_is_ready(
    make_app: Callable[..., Harness], spawned: list[FakePopen]
) -> None:
    app = make_app(None)
    app.tk.find("Start conversation").click()
    assert len(spawned) == 1  # already starting: not a second one
    assert app.tk.state_line == "Starting the service… · starts when ready"
    assert app.tk.find("Stop conversation").enabled  # cancels the pending start
    app.client = FakeClient(pid=spawned[0].pid, state="loading")
    app.tk.tick()
    assert app.client.actions == []  # the service refuses a start while loading
    assert not app.tk.find("Quantization", "q8").enabled  # and a switch
    app.client.state["state"] = "idle"
    app.tk.tick()
    assert app.client.actions == [("start",)]
    app.tk.tick()
    assert app.client.actions == [("start",)] and app.tk.title == "Moshi ●"


def test_choice_while_offline_is_what_the_next_service_loads(
    make_app: Callable[..., Harness], spawned: list[FakePopen]
) -> None:
    save_prefs(Prefs("moshika", "q4"))
    app = make_app(None)
    assert spawned[0].args[-4:] == ["--voice", "moshika", "--quant", "q4"]
    spawned[0].returncode = 1  # it fails: the app is offline
    app.tk.tick()
    app.tk.find("Quantization", "q8").click()
    assert app.tk.find("Quantization", "q8").checked
    assert load_prefs() == Prefs("moshika", "q8")
    app.tk.find("Start conversation").click()
    assert spawned[1].args[-4:] == ["--voice", "moshika", "--quant", "q8"]


def test_a_vanished_service_is_notified_once(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    app = make_app(client)
    for answers in (False, True, False):  # slow answers now and then are not a lost service
        client.alive = answers
        for _ in range(LOST_AFTER - 1):
            app.tk.tick()
    assert app.tk.notifications == [] and app.tk.title == "Moshi ○"
    for _ in range(3):
        app.tk.tick()
    assert [t for t, _ in app.tk.notifications] == ["The assistant service stopped"]
    assert app.tk.title == "Moshi ⊘"
    assert not app.tk.find("Mute microphone (⌃⌥M)").enabled
    assert not app.tk.find("Open dashboard").enabled
    assert not app.tk.find("Recent conversations").enabled
    client.alive = True  # started again elsewhere (`assistant serve`): picked up
    app.tk.tick()
    assert app.tk.title == "Moshi ○"


# --- launch at login -----------------------------------------------------------------------------
def test_launch_at_login_writes_and_removes_the_agent(
    make_app: Callable[..., Harness], tmp_path: Path
) -> None:
    app = make_app(FakeClient(), app_bundle=tmp_path / "Moshi Assistant.app")
    item = app.tk.find("Launch at login")
    plist = tmp_path / "home" / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    item.click()
    assert item.checked and plist.is_file()
    with plist.open("rb") as f:
        agent = plistlib.load(f)
    assert agent["Label"] == LABEL == "dev.moshi-assistant.menubar"
    # By bundle id, through LaunchServices: wherever the app was moved, it is the app that runs.
    assert agent["ProgramArguments"] == ["/usr/bin/open", "-b", "dev.moshi-assistant"]
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] is False
    assert agent["ProcessType"] == "Interactive"
    log = Path(agent["StandardOutPath"])
    assert log == Path(agent["StandardErrorPath"]) and log.parent.is_dir()
    assert log.is_relative_to(data_dir())
    # launchd gives the agent no shell environment: the folders go to the settings file.
    assert "EnvironmentVariables" not in agent
    assert load_settings() == {
        "ASSISTANT_HOME": os.environ["ASSISTANT_HOME"],
        "HF_HOME": os.environ["HF_HOME"],
    }
    assert app.tk.notifications == []
    assert [p.name for p in plist.parent.iterdir()] == [plist.name]  # no temp file left
    item.click()
    assert not item.checked and not plist.exists()
    assert list(plist.parent.iterdir()) == []


def test_launch_at_login_outside_the_app_is_refused_with_a_pointer(
    make_app: Callable[..., Harness], tmp_path: Path
) -> None:
    app = make_app(FakeClient())  # `assistant menubar` from a terminal: no app
    item = app.tk.find("Launch at login")
    item.click()
    assert not item.checked and not app.agent.path.exists()
    assert app.tk.notifications == [("Launch at login", NOT_AS_APP)]
    assert "build_app.sh" in NOT_AS_APP and "Python" not in NOT_AS_APP
    with pytest.raises(AssistantError, match="only the app can turn it on"):
        LaunchAgent(home=tmp_path / "home", app=None).enable()


def test_a_stale_agent_is_not_enabled_and_the_app_rewrites_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    moved = LaunchAgent(home=home, app=tmp_path / "Applications" / "Moshi Assistant.app")
    path = moved.path
    path.parent.mkdir(parents=True)
    old = {"Label": LABEL, "ProgramArguments": ["/usr/bin/open", "-a", str(tmp_path / "old.app")]}
    path.write_bytes(plistlib.dumps(old))
    assert moved.exists() and not moved.is_enabled()  # it exists, but would open nothing
    assert moved.refresh() and moved.is_enabled()
    with path.open("rb") as f:
        assert plistlib.load(f) == moved.definition()
    path.unlink()
    assert not moved.refresh() and not path.exists()  # never turned on behind the user's back


def test_every_app_start_rewrites_the_agent(
    make_app: Callable[..., Harness], tmp_path: Path
) -> None:
    agent = LaunchAgent(home=tmp_path / "home", app=tmp_path / "Moshi Assistant.app")
    agent.path.parent.mkdir(parents=True)
    agent.path.write_bytes(plistlib.dumps({"Label": LABEL, "ProgramArguments": ["python"]}))
    app = make_app(FakeClient(), app_bundle=tmp_path / "Moshi Assistant.app")
    assert app.tk.find("Launch at login").checked and agent.is_enabled()


def test_a_stale_agent_outside_the_app_can_be_removed(
    make_app: Callable[..., Harness], tmp_path: Path
) -> None:
    app = make_app(FakeClient())
    path = app.agent.path
    path.parent.mkdir(parents=True)
    path.write_bytes(plistlib.dumps({"Label": LABEL, "ProgramArguments": ["python"]}))
    item = app.tk.find("Launch at login")
    assert not item.checked
    item.click()
    assert not path.exists() and app.tk.notifications == []


def test_the_agent_knows_the_app_from_its_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSHI_ASSISTANT_APP", "/Applications/Moshi Assistant.app")
    assert LaunchAgent().app == Path("/Applications/Moshi Assistant.app")
    monkeypatch.delenv("MOSHI_ASSISTANT_APP")
    assert LaunchAgent().app is None


def test_launch_agent_checkmark_reflects_the_file(
    make_app: Callable[..., Harness], tmp_path: Path
) -> None:
    app = make_app(FakeClient(), app_bundle=tmp_path / "Moshi Assistant.app")
    app.agent.enable()  # e.g. by an earlier run
    app.tk.tick()
    assert app.tk.find("Launch at login").checked


# --- the global mute shortcut -------------------------------------------------------------------
def test_the_mute_shortcut_is_registered_and_toggles_mute(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    app = make_app(client)
    assert app.tk.hotkey is not None
    code, mask, _ = app.tk.hotkey
    assert (code, mask) == (0x2E, 0x1000 | 0x0800)  # kVK_ANSI_M, controlKey | optionKey
    app.tk.press_hotkey()
    assert client.actions == [("mute", True)]
    assert app.tk.title == "Moshi ○ 🔇" and app.tk.find("Mute microphone (⌃⌥M)").checked
    app.tk.press_hotkey()
    assert client.actions[-1] == ("mute", False) and app.tk.title == "Moshi ○"


def test_the_mute_shortcut_is_changed_in_preferences(
    make_app: Callable[..., Harness], tmp_path: Path
) -> None:
    app = make_app(FakeClient())
    app.tk.find("Preferences", "Mute shortcut", "F5").click()
    assert app.tk.hotkey is not None and app.tk.hotkey[:2] == (0x60, 0)
    assert app.tk.find("Mute microphone (F5)").enabled
    assert app.tk.find("Preferences", "Mute shortcut", "F5").checked
    assert load_prefs().mute_hotkey == "f5"
    app.tk.find("Preferences", "Mute shortcut", "Off").click()
    assert app.tk.hotkey is None and app.tk.find("Mute microphone").enabled
    # Remembered: the next start registers the saved one.
    save_prefs(Prefs(mute_hotkey="cmd+shift+k"))
    again = make_app(FakeClient())
    assert again.tk.hotkey is not None and again.tk.hotkey[:2] == (0x28, 0x0100 | 0x0200)
    assert again.tk.find("Mute microphone (⇧⌘K)").enabled


def test_a_shortcut_that_cannot_be_registered_is_said(make_app: Callable[..., Harness]) -> None:
    app = make_app(FakeClient())
    app.tk.refuse_hotkey = "taken by another app"
    app.tk.find("Preferences", "Mute shortcut", "⌃⇧M").click()
    assert app.tk.notifications == [("Mute shortcut", "RuntimeError: taken by another app")]
    app.tk.find("Mute microphone (⌃⇧M)").click()  # the menu still mutes
    assert app.client is not None and app.client.actions == [("mute", True)]


@pytest.mark.parametrize(
    ("spec", "symbol", "code", "mask"),
    [
        ("ctrl+option+m", "⌃⌥M", 0x2E, 0x1800),
        ("Control+Alt+Space", "⌃⌥Space", 0x31, 0x1800),
        ("cmd+shift+k", "⇧⌘K", 0x28, 0x0300),  # shown in macOS's order
        ("f5", "F5", 0x60, 0),
    ],
)
def test_shortcut_spellings(spec: str, symbol: str, code: int, mask: int) -> None:
    hotkey = parse_hotkey(spec)
    assert hotkey is not None
    assert (hotkey.symbol, hotkey.key_code, hotkey.modifier_mask) == (symbol, code, mask)
    assert parse_hotkey(hotkey.spec) == hotkey


def test_bad_shortcuts_are_refused_and_not_kept(tmp_path: Path) -> None:
    for bad in ("ctrl+", "hyper+m", "m", "ctrl+ctrl+m", "ctrl+option+é"):
        with pytest.raises(UsageError, match="mute shortcut"):
            parse_hotkey(bad)
    assert parse_hotkey("off") is None and describe("nonsense") == "invalid"
    prefs_file().parent.mkdir(parents=True, exist_ok=True)
    prefs_file().write_text('{"mute_hotkey": "hyper+m", "listen_first": "yes"}')
    assert load_prefs() == Prefs()  # unreadable values fall back to the defaults


# --- listen first ---------------------------------------------------------------------------------
def test_listen_first_offline_is_what_the_next_service_starts_with(
    make_app: Callable[..., Harness], spawned: list[FakePopen]
) -> None:
    save_prefs(Prefs(listen_first=True))
    app = make_app(None)
    [process] = spawned
    assert process.args[-1] == "--listen-first"
    assert app.tk.find("Listen first").checked
    # Turned off while that service starts: it is told once it answers.
    app.tk.find("Listen first").click()
    assert not load_prefs().listen_first
    app.client = FakeClient(pid=process.pid, listen_first=True)
    app.tk.tick()
    assert app.client.actions == [("listen_first", False)]
    assert not app.tk.find("Listen first").checked


def test_listen_first_on_a_running_service(make_app: Callable[..., Harness]) -> None:
    client = FakeClient()
    app = make_app(client)
    item = app.tk.find("Listen first")
    item.click()
    assert client.actions == [("listen_first", True)] and item.checked
    client.state["listen_first"] = False  # changed elsewhere (`ctl`, another app)
    app.tk.tick()
    assert not item.checked
