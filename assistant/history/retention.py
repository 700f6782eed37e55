"""How long conversations are kept: `prune --older-than 30d` and the settings file's
`"retention"` (default: forever), applied after each conversation by the transcriber."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ..errors import HistoryError, UsageError
from .store import delete, list_conversations

log = logging.getLogger(__name__)

FOREVER = ("forever", "never", "all", "")
_AGE = re.compile(r"(\d{1,6})\s*([hdw])")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
MAX_AGE = timedelta(days=36_500)


def parse_age(text: str) -> timedelta | None:
    """`30d`, `12h`, `2w` -> a timedelta; `forever` -> None. UsageError otherwise."""
    text = text.strip().lower()
    if text in FOREVER:
        return None
    m = _AGE.fullmatch(text)
    if not m or int(m[1]) == 0:
        raise UsageError(
            f"not an age: {text!r} (a number of hours, days or weeks from 1 to 999999, "
            "like 12h, 30d or 2w; or 'forever')"
        )
    return min(int(m[1]) * _UNITS[m[2]], MAX_AGE)


@dataclass
class Pruned:
    deleted: list[str] = field(default_factory=list)
    kept_busy: dict[str, str] = field(default_factory=dict)  # id -> why it was not deleted


def prune(
    older_than: timedelta,
    root: Path | None = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Pruned:
    """Delete every conversation that started more than `older_than` ago (folders that are
    not conversations are never touched)."""
    cutoff = (now or datetime.now().astimezone()) - older_than
    result = Pruned()
    for c in list_conversations(root):
        if not c.is_conversation or c.started is None or c.started >= cutoff:
            continue
        if dry_run:
            result.deleted.append(c.id)
            continue
        try:
            left = delete(c.id, root)
        except HistoryError as e:
            result.kept_busy[c.id] = e.message
            continue
        if left:
            result.kept_busy[c.id] = "files that are not the assistant's were left: " + ", ".join(
                left
            )
        else:
            result.deleted.append(c.id)
    return result


def apply_retention(setting: str, root: Path | None = None) -> Pruned:
    """The settings file's retention, applied; a bad value is logged and keeps everything."""
    try:
        age = parse_age(setting)
    except UsageError as e:
        log.warning("settings: retention: %s; keeping every conversation", e)
        return Pruned()
    return Pruned() if age is None else prune(age, root)
