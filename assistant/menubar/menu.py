"""The menu: its items, their actions, and a poll of the service every second.

Built through the Toolkit interface (rumps on a Mac, a recording stand-in in the tests). The
service owns all state; the menu shows what `live()` last said and sends requests. No call to
the service is made on the UI thread: each goes through `calls` (background.py) and its result
is applied on the UI thread when it comes back. Every callback is guarded: a failure becomes a
notification, never an exception in the UI loop.

    Listening · step 52 ms           (disabled: the state line)
    ─────
    Start conversation / Stop conversation   (only the one that applies is enabled)
    ─────
    Quantization ▸ q4 / q8 (/ bf16 while chosen)
    Voice ▸ moshiko / moshika
    Mute microphone (⌃⌥M)       (the global shortcut, shown; pressed anywhere, it toggles)
    Listen first                 (Moshi silent until you speak, from the next conversation)
    ─────
    Open dashboard / Recent conversations / Open recordings
    ─────
    Preferences ▸ Mute shortcut ▸ ⌃⌥M / ⌃⌥Space / ⌃⇧M / F5 / Off
    Launch at login
    ─────
    Quit Moshi Assistant
"""

from __future__ import annotations

import logging
import subprocess
import sys
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..checkpoint.catalogue import QUANTS, VOICES
from ..errors import AssistantError, ServiceError, ServiceNotRunningError
from ..paths import sessions_dir
from .background import DRAIN_S, BackgroundCalls, Calls, Result
from .display import View, state_line, title, view_of
from .hotkey import MUTE_HOTKEY_CHOICES, describe, parse_hotkey
from .launch_agent import LaunchAgent
from .prefs import Prefs, load_prefs, save_prefs
from .service_process import Client, ServiceLauncher, service_log
from .toolkit import Callback, MenuItem, Toolkit

log = logging.getLogger(__name__)

APP_NAME = "Moshi Assistant"
POLL_S = 1.0
# Polls in a row without an answer before the service counts as gone: one slow answer (the
# service busy loading a model) is not worth a "stopped" notification.
LOST_AFTER = 3
HIDDEN_UNLESS_CHOSEN = ("bf16",)  # 15 GB and rarely wanted: shown only while it is the choice

T = TypeVar("T")


@dataclass
class Items:
    state: MenuItem
    start: MenuItem
    stop: MenuItem
    quants: dict[str, MenuItem]
    voices: dict[str, MenuItem]
    mute: MenuItem
    listen_first: MenuItem
    hotkeys: dict[str, MenuItem]
    dashboard: MenuItem
    conversations: MenuItem
    recordings: MenuItem
    login: MenuItem
    quit: MenuItem


def _default_connect() -> Client:
    from ..service.client import ServiceClient

    return ServiceClient.connect()


class MenuController:
    def __init__(
        self,
        toolkit: Toolkit,
        *,
        connect: Callable[[], Client] = _default_connect,
        launcher: ServiceLauncher | None = None,
        agent: LaunchAgent | None = None,
        calls: Calls | None = None,
    ) -> None:
        self.toolkit = toolkit
        self._connect = connect
        self.launcher = launcher or ServiceLauncher(connect)
        self.agent = agent or LaunchAgent()
        self.calls: Calls = calls if calls is not None else BackgroundCalls()
        self._polling = False  # a poll of the service is on its way
        self.prefs = load_prefs()
        self.client: Client | None = None
        self.owned = False  # the service answering is the one this app started
        self.status: dict[str, Any] | None = None
        self.metrics: dict[str, Any] | None = None
        self.start_pending = False  # Start clicked before the service or model was ready
        self._seen_error: str | None = None  # the service error already notified
        self._seen_warnings: list[str] = []  # the conversation's warnings already notified
        self._tick_failure: str | None = None  # the poll failure already notified
        self._unanswered = 0  # polls in a row the service did not answer
        self._synced = True  # the attached service was told this app's preferences
        self._quit_requested = False  # by a signal: quit at the next drain, on the UI thread
        self._quitting = False
        self.items = self._build()

    # --- setup ----------------------------------------------------------------------------------
    def _build(self) -> Items:
        tk, guard = self.toolkit, self._guarded
        items = Items(
            state=tk.item("Starting…"),  # no callback: disabled, information only
            start=tk.item("Start conversation", guard("Could not start", self.start)),
            stop=tk.item("Stop conversation", guard("Could not stop", self.stop)),
            quants={
                q: tk.item(q, guard(f"Could not switch to {q}", self._chooser(quant=q)))
                for q in QUANTS
            },
            voices={
                v: tk.item(v, guard(f"Could not switch to {v}", self._chooser(voice=v)))
                for v in VOICES
            },
            mute=tk.item(self._mute_title(), guard("Could not mute", self.toggle_mute)),
            listen_first=tk.item("Listen first", guard("Listen first", self.toggle_listen_first)),
            hotkeys={
                spec: tk.item(
                    "Off" if spec == "off" else describe(spec),
                    guard("Mute shortcut", self._hotkey_chooser(spec)),
                )
                for spec in MUTE_HOTKEY_CHOICES
            },
            dashboard=tk.item("Open dashboard", guard("Could not open", self.open_dashboard)),
            conversations=tk.item(
                "Recent conversations", guard("Could not open", self.open_conversations)
            ),
            recordings=tk.item("Open recordings", guard("Could not open", self.open_recordings)),
            login=tk.item("Launch at login", guard("Launch at login", self.toggle_login)),
            quit=tk.item(f"Quit {APP_NAME}", self.quit),  # quit handles its own failures
        )
        tk.set_menu(
            [
                items.state,
                None,
                items.start,
                items.stop,
                None,
                tk.submenu("Quantization", list(items.quants.values())),
                tk.submenu("Voice", list(items.voices.values())),
                items.mute,
                items.listen_first,
                None,
                items.dashboard,
                items.conversations,
                items.recordings,
                None,
                tk.submenu(
                    "Preferences",
                    [tk.submenu("Mute shortcut", list(items.hotkeys.values()))],
                ),
                items.login,
                None,
                items.quit,
            ]
        )
        return items

    def launch(self) -> None:
        """Attach to a running service or start one, then poll it every second."""
        try:  # as the app: the login item says what this app would write (moved, updated)
            self.agent.refresh()
        except Exception as e:
            self._failed("Launch at login", e)
        self._register_hotkey()
        self.toolkit.every(POLL_S, self.tick)
        self.toolkit.every(DRAIN_S, self.drain)
        self._polling = True
        self.calls.submit(self._find, lambda r: self._polled(r, self._attach_or_spawn))
        self._render_safely()

    # --- what is shown --------------------------------------------------------------------------
    def view(self) -> View:
        return view_of(
            self.status,
            self.metrics,
            starting=self.launcher.waiting,
            start_pending=self.start_pending,
        )

    def render(self) -> None:
        v, items = self.view(), self.items
        self.toolkit.set_title(title(v))
        items.state.set_title(state_line(v))
        items.start.set_enabled(not v.talking and not v.start_pending)
        items.stop.set_enabled(v.talking or v.start_pending)
        # Offline, the choice is what the next service loads; connected, what the service has.
        chosen = Prefs(v.voice or "", v.quant or "") if v.connected else self.prefs
        choosable = v.state not in ("starting", "loading")  # the service refuses mid-load
        for quant, item in items.quants.items():
            item.set_checked(quant == chosen.quant)
            item.set_enabled(choosable)
            item.set_hidden(quant in HIDDEN_UNLESS_CHOSEN and quant != chosen.quant)
        for voice, item in items.voices.items():
            item.set_checked(voice == chosen.voice)
            item.set_enabled(choosable)
        items.mute.set_checked(v.muted)
        items.mute.set_enabled(v.connected)
        items.mute.set_title(self._mute_title())
        listen_first = (self.status or {}).get("listen_first") if v.connected else None
        items.listen_first.set_checked(
            bool(listen_first) if listen_first is not None else self.prefs.listen_first
        )
        for spec, item in items.hotkeys.items():
            item.set_checked(describe(spec) == describe(self.prefs.mute_hotkey))
        items.dashboard.set_enabled(v.connected)
        items.conversations.set_enabled(v.connected)
        items.login.set_checked(self.agent.is_enabled())

    # --- the poll -------------------------------------------------------------------------------
    def drain(self) -> None:
        """On the UI thread: apply the results of calls that came back (and quit when a
        signal asked to)."""
        if self._quit_requested and not self._quitting:
            self.quit()
        if self.calls.drain():
            self._render_safely()

    def tick(self) -> None:
        """Once a second: find or follow the service (off the UI thread), then redraw."""
        try:
            if not self._polling:
                self._poll()
        except Exception as e:
            self._tick_failed(e)
        self._render_safely()

    def _poll(self) -> None:
        self._polling = True
        if self.client is not None:
            client = self.client
            self.calls.submit(client.live, lambda r: self._polled(r, self._live, client))
        elif self.launcher.waiting:
            self.calls.submit(self._poll_started, lambda r: self._polled(r, self._started))
        else:  # one started elsewhere (`assistant serve` in a terminal) is picked up too
            self.calls.submit(self._find, lambda r: self._polled(r, self._found))

    def _polled(self, result: Result[T], apply: Callable[[T], None], client: Any = None) -> None:
        self._polling = False
        if client is not None and client is not self.client:
            return  # an answer from a service this menu has since let go
        found = self.client is None
        try:
            if result.error is not None:
                raise result.error
            apply(result.value)  # type: ignore[arg-type]
            self._tick_failure = None
            if found and self.client is not None:
                self._poll()  # just attached: its live figures now, not a second later
        except ServiceNotRunningError:
            if self.client is not None:
                self._unanswered += 1
                if self._unanswered >= LOST_AFTER:
                    self._service_lost()
        except Exception as e:  # the timer must keep running; say so once, not every second
            self._tick_failed(e)

    def _tick_failed(self, e: BaseException) -> None:
        message = _describe(e)
        if message != self._tick_failure:
            log.error("the menu bar could not update", exc_info=e)
            self._notify("The menu bar could not update", message)
        self._tick_failure = message

    def _live(self, live: dict[str, Any]) -> None:
        self._unanswered = 0
        self.metrics = live.get("metrics")
        self._take(live["status"])
        if self.start_pending:
            self._start_when_ready()

    def _poll_started(self) -> Client | ServiceError | None:
        """(Worker thread.) The started service's client once it answers, or why it failed."""
        try:
            return self.launcher.poll()
        except ServiceError as e:
            return e

    def _started(self, outcome: Client | ServiceError | None) -> None:
        if isinstance(outcome, ServiceError):
            self._did_not_start(outcome)
        elif outcome is not None:
            self._attach(outcome)

    def _attach_or_spawn(self, found: tuple[Client, dict[str, Any]] | None) -> None:
        if found is None:
            self._spawn()
        elif self.client is None:
            self._attach(*found)

    def _found(self, found: tuple[Client, dict[str, Any]] | None) -> None:
        if found is not None and self.client is None:
            self._attach(*found)
        elif found is None and self.start_pending and not self.launcher.waiting:
            self._spawn()  # Start was clicked while this look was out

    def _spawn(self) -> None:
        try:
            self.launcher.spawn(self.prefs)
        except ServiceError as e:
            self._did_not_start(e)

    def _did_not_start(self, e: ServiceError) -> None:
        self.start_pending = False
        self._notify("The assistant service did not start", str(e))

    def _find(self) -> tuple[Client, dict[str, Any]] | None:
        """(Worker thread.) The running service and its status, or None."""
        try:
            client = self._connect()
            return client, client.status()
        except ServiceNotRunningError:
            return None

    def _start_when_ready(self) -> None:
        state = (self.status or {}).get("state")
        if state == "loading":
            return
        self.start_pending = False
        if state == "idle" and self.client is not None:
            self._call("Could not start", self.client.start, self._take)
        # error: the failure was notified; listening or speaking: nothing left to do

    # --- actions --------------------------------------------------------------------------------
    def start(self) -> None:
        if self.client is None:
            # Not while a look for a running service is out: its answer decides (_found).
            if not self.launcher.waiting and not self._polling:
                self.launcher.spawn(self.prefs)
            self.start_pending = True
        elif (self.status or {}).get("state") == "loading":
            self.start_pending = True
        else:
            self.start_pending = False
            self._call("Could not start", self.client.start, self._take)

    def stop(self) -> None:
        self.start_pending = False
        if self.client is not None:
            self._call("Could not stop", self.client.stop, self._take)

    def choose(self, voice: str | None = None, quant: str | None = None) -> None:
        """Switch the service's voice or quantization (offline: the next start's)."""
        if self.client is None:
            self.prefs = replace(
                self.prefs, voice=voice or self.prefs.voice, quant=quant or self.prefs.quant
            )
            save_prefs(self.prefs)
            return
        now = self.status or {}
        if (voice or now.get("voice"), quant or now.get("quant")) == (
            now.get("voice"),
            now.get("quant"),
        ):
            return  # already the choice: no reload
        client = self.client

        def switched(status: dict[str, Any]) -> None:
            self._take(status)
            self.prefs = replace(
                self.prefs,
                voice=status.get("voice") or self.prefs.voice,
                quant=status.get("quant") or self.prefs.quant,
            )
            save_prefs(self.prefs)

        # Refused: the call raises, it is notified, nothing changes.
        what = f"Could not switch to {quant or voice}"
        self._call(what, lambda: client.switch(voice=voice, quant=quant), switched)

    def toggle_mute(self) -> None:
        """From the menu or the global shortcut. Shown at once (the title, the checkmark);
        the service's answer confirms it, or a refusal puts it back at the next poll."""
        if self.client is not None:
            client, muted = self.client, not (self.status or {}).get("muted", False)
            self._call("Could not mute", lambda: client.mute(muted), self._take)
            if self.status is not None:
                self.status = {**self.status, "muted": muted}

    def toggle_listen_first(self) -> None:
        """Moshi silent until the user speaks: the service's setting from its next
        conversation, and the preference a service this app starts gets."""
        now = (self.status or {}).get("listen_first") if self.client else None
        on = not (self.prefs.listen_first if now is None else bool(now))
        self.prefs = replace(self.prefs, listen_first=on)
        save_prefs(self.prefs)
        if self.client is not None:
            client = self.client
            self._call("Listen first", lambda: client.listen_first(on), self._take)

    def choose_hotkey(self, spec: str) -> None:
        """Another global mute shortcut (or "off"); saved, and registered at once."""
        parse_hotkey(spec)  # a bad spelling is refused before anything changes
        self.prefs = replace(self.prefs, mute_hotkey=spec)
        save_prefs(self.prefs)
        self._register_hotkey()

    def open_dashboard(self) -> None:
        if self.client is None:
            raise ServiceNotRunningError("the assistant service is not running")
        webbrowser.open(self.client.info.dashboard_url)

    def open_conversations(self) -> None:
        """The dashboard's Conversations page: past conversations to play, search, delete."""
        if self.client is None:
            raise ServiceNotRunningError("the assistant service is not running")
        webbrowser.open(self.client.info.conversations_url)

    def open_recordings(self) -> None:
        folder = sessions_dir()
        folder.mkdir(parents=True, exist_ok=True)
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        try:
            subprocess.run([opener, str(folder)], check=True, capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            raise AssistantError(f"cannot open {folder}: {e}") from None

    def toggle_login(self) -> None:
        """On: write the agent (the app only: refused with a pointer to it from a terminal).
        Off, or a stale agent outside the app: remove it."""
        if self.agent.is_enabled() or (self.agent.exists() and self.agent.app is None):
            self.agent.disable()
        else:
            self.agent.enable()

    def request_quit(self) -> None:
        """From a signal handler (SIGTERM, SIGINT): take the Quit path at the next drain, on
        the UI thread, so the service this app started stops and the microphone is released."""
        self._quit_requested = True

    def quit(self) -> None:
        """Quit the app; the service too if this app started it (one started elsewhere stays).
        The service's answer is awaited off the UI thread (at most the client's timeout)."""
        if self._quitting:
            return  # already on its way (a click, then a signal)
        self._quitting = True
        try:
            if self.client is not None and self.owned:
                self.calls.submit(self.client.quit, self._quit_answered)
                return
            if self.client is None:
                self.launcher.terminate()  # still starting: don't leave it behind
        except Exception as e:  # quitting must not fail: report and go on
            log.error("while quitting", exc_info=e)
            print(f"{APP_NAME}: while quitting: {_describe(e)}", file=sys.stderr)
        self.toolkit.quit()

    def _quit_answered(self, result: Result[dict[str, Any]]) -> None:
        try:
            if isinstance(result.error, AssistantError):
                self.launcher.terminate()  # not answering: stop the process itself
            elif result.error is not None:
                print(f"{APP_NAME}: while quitting: {_describe(result.error)}", file=sys.stderr)
        finally:
            self.toolkit.quit()

    # --- internals ------------------------------------------------------------------------------
    def _mute_title(self) -> str:
        shortcut = describe(self.prefs.mute_hotkey)
        return (
            "Mute microphone" if shortcut in ("off", "invalid") else f"Mute microphone ({shortcut})"
        )

    def _hotkey_chooser(self, spec: str) -> Callback:
        return lambda: self.choose_hotkey(spec)

    def _register_hotkey(self) -> None:
        """Register the preferred shortcut (Carbon: no Accessibility permission); one that
        cannot be (taken by another app, the library missing) is said once, not fatal."""
        try:
            hotkey = parse_hotkey(self.prefs.mute_hotkey)
            if hotkey is None:
                self.toolkit.clear_hotkey()
            else:
                pressed = self._guarded("Could not mute", self.toggle_mute)
                self.toolkit.set_hotkey(hotkey.key_code, hotkey.modifier_mask, pressed)
        except Exception as e:
            self._failed("Mute shortcut", e)

    def _chooser(self, *, voice: str | None = None, quant: str | None = None) -> Callback:
        return lambda: self.choose(voice=voice, quant=quant)

    def _attach(self, client: Client, status: dict[str, Any] | None = None) -> None:
        self.client = client
        self.owned = self.launcher.owns(client)
        self._synced = not self.owned  # this app's service: told its preferences once
        if status is not None:
            self._take(status)

    def _take(self, status: dict[str, Any]) -> None:
        """Keep the service's latest status; a new error or warning is notified once."""
        self.status = status
        if not self._synced and self.client is not None:
            # The service this app started follows its preference, also when it was changed
            # while the service started.
            self._synced = True
            client, on = self.client, self.prefs.listen_first
            if bool(status.get("listen_first")) != on:
                self._call("Listen first", lambda: client.listen_first(on), self._take)
        error = status.get("error")
        if error and error != self._seen_error:
            self._notify("Moshi Assistant error", error)
        self._seen_error = error
        warnings = status.get("warnings") or []
        for warning in warnings:
            if warning not in self._seen_warnings:
                self._notify(APP_NAME, warning)  # e.g. a silent microphone: whom to allow
        self._seen_warnings = list(warnings)

    def _service_lost(self) -> None:
        where = f" Its log: {service_log()}" if self._forget_service() else ""
        self._notify("The assistant service stopped", f"Click Start to start it again.{where}")

    def _forget_service(self) -> bool:
        """Back to offline; whether the lost service was this app's."""
        owned = self.owned
        self.client, self.owned, self.status, self.metrics = None, False, None, None
        self.start_pending, self._unanswered = False, 0
        return owned

    def _guarded(self, what: str, action: Callback) -> Callback:
        """`action` as a menu callback: failures become a notification titled `what`."""

        def run() -> None:
            try:
                action()
            except Exception as e:  # never into the UI loop
                self._failed(what, e)
            self._render_safely()

        return run

    def _call(self, what: str, call: Callable[[], T], then: Callable[[T], None]) -> None:
        """Make `call` off the UI thread; `then` gets its value on the UI thread, a failure
        becomes a notification titled `what`."""

        def done(result: Result[T]) -> None:
            try:
                if result.error is not None:
                    raise result.error
                then(result.value)  # type: ignore[arg-type]
            except Exception as e:
                self._failed(what, e)
            self._render_safely()

        self.calls.submit(call, done)

    def _failed(self, what: str, e: BaseException) -> None:
        log.error("%s", what, exc_info=e)
        if isinstance(e, ServiceNotRunningError):
            self._forget_service()
            self._notify(what, str(e))
        else:
            self._notify(what, _describe(e))

    def _notify(self, title: str, message: str) -> None:
        try:
            self.toolkit.notify(title, message)
        except Exception as e:  # the last resort: the log (and stderr)
            log.error("%s: %s (notification failed)", title, message, exc_info=e)
            print(f"{APP_NAME}: {title}: {message} (notification failed: {e})", file=sys.stderr)

    def _render_safely(self) -> None:
        try:
            self.render()
        except Exception as e:
            log.error("cannot redraw the menu", exc_info=e)
            print(f"{APP_NAME}: cannot redraw the menu: {_describe(e)}", file=sys.stderr)


def _describe(e: BaseException) -> str:
    return str(e) if isinstance(e, AssistantError) else f"{type(e).__name__}: {e}"
