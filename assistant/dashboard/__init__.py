"""What the user sees of a conversation's health: metrics, the live terminal dashboard, the
session's exports (metrics log, summary, Chrome trace)."""
