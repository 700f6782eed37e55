"""The menu-bar app as a real process, on the stand-in toolkit instead of rumps, for the
signal tests: `python -m tests.support.menubar_standin_app` runs `run_app` exactly as `assistant
menubar` does (the same controller, launcher, signal handling), with a toolkit whose run loop
fires the timers on time. The service it starts is the real `assistant serve`, without a model
(`--no-preload`) on a free port. Prints `attached <pid>` once it owns the service it started."""

from __future__ import annotations

import sys
import time

from assistant.menubar import service_process
from assistant.menubar.app import run_app, single_instance
from assistant.menubar.menu import MenuController
from assistant.menubar.prefs import Prefs
from tests.support.menubar_fakes import FakeToolkit

_serve = service_process.serve_command


def serve_command(prefs: Prefs) -> list[str]:
    return [*_serve(prefs), "--no-preload", "--port", "0"]


class LoopToolkit(FakeToolkit):
    """Runs the timers on the main thread, as rumps' run loop does, until `quit`."""

    def __init__(self) -> None:
        super().__init__()
        self.controller: MenuController | None = None
        self._told = False

    def run(self) -> None:
        due = [time.monotonic()] * len(self.timers)
        while not self.quit_called:
            now = time.monotonic()
            for i, (period, callback) in enumerate(self.timers):
                if now >= due[i]:
                    callback()
                    due[i] = now + period
            c = self.controller
            if not self._told and c is not None and c.owned and c.client is not None:
                print(f"attached {c.client.info.pid}", flush=True)
                self._told = True
            time.sleep(0.01)

    def notify(self, title: str, message: str) -> None:
        print(f"notification: {title}: {message}", flush=True)


def main() -> None:
    service_process.serve_command = serve_command
    toolkit = LoopToolkit()
    with single_instance():
        controller = MenuController(toolkit)
        toolkit.controller = controller
        run_app(controller, toolkit)
    print("quit", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
