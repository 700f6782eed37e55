"""The live terminal dashboard: `view.py` draws a snapshot, `live.py` redraws it while a
conversation runs. The figures come from `telemetry`."""
