"""What the conversation loop reports about itself, for whoever reads it (the terminal
dashboard, the session files, the service, the bench).

    records.py     FrameRecord: each 80 ms frame's timestamps, stage by stage; the loop's counters
    histogram.py   constant-memory millisecond histograms
    metrics.py     MetricsCollector: the one set of per-stage histograms, snapshots of everything
    summary.py     SessionSummary: summary.json, built in one place
    trace.py       the Chrome trace of a session
    model_card.py  the loaded checkpoint, as dashboards and summaries describe it
"""
