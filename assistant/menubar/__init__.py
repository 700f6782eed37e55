"""The macOS menu-bar app (`assistant menubar`): a thin face on the background service.

    toolkit.py        the small interface the menu is built through (rumps, or a test stand-in)
    display.py        what the menu bar shows: the state symbol, the step latency, the state line
    menu.py           the menu, its actions and the 1 s poll of the service
    service_process.py  starting `assistant serve` when none runs, and waiting for it
    prefs.py          the voice, quantization and listen first a started service gets; the
                      mute shortcut
    hotkey.py         the global mute shortcut: its spelling, its symbols, its Carbon codes
    launch_agent.py   "Launch at login": a LaunchAgent plist in ~/Library/LaunchAgents
    rumps_toolkit.py  the toolkit on rumps (macOS only; imported only there)
    app.py            wiring: one instance, rumps, run

Everything except rumps_toolkit.py runs (and is tested) on any platform.
"""
