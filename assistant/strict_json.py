"""JSON from checkpoint files, parsed so that no input can crash or stall the parser.

Python's `json` recurses once per nesting level (a few thousand `[` raise RecursionError),
accepts `NaN` and `Infinity`, turns `1e999` into infinity, silently keeps the last of two
equal keys, and refuses integers over 4300 digits with a bare ValueError. Here the nesting
depth is measured before parsing (strings removed, brackets counted at C speed), and every one
of those cases becomes the caller's error with a one-line reason.
"""

from __future__ import annotations

import json
import math
import re
from os import PathLike
from typing import Any

import numpy as np

from .errors import AssistantError

# A JSON string: quotes around anything but an unescaped quote (unrolled loop: no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN = np.frombuffer(b"[{", np.uint8)
_CLOSE = np.frombuffer(b"]}", np.uint8)


class _Refused(ValueError):
    """Raised from inside the parser's hooks: carries the reason out."""


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in `raw` (JSON), strings ignored."""
    skeleton = np.frombuffer(_STRING.sub(b'""', raw), np.uint8)
    if skeleton.size == 0:
        return 0
    step = np.isin(skeleton, _OPEN).astype(np.int64) - np.isin(skeleton, _CLOSE).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise _Refused(f"non-finite number {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"key {key!r} appears twice")
        result[key] = value
    return result


def load_strict(
    raw: bytes,
    *,
    max_depth: int,
    error: type[AssistantError],
    path: str | PathLike | None,
    what: str = "invalid JSON",
) -> Any:
    """Parse `raw` as UTF-8 JSON at most `max_depth` levels deep, with finite numbers and
    unique keys, or raise `error` naming `path`; its message starts with `what`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} (not UTF-8 text)", path=path) from None
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise error(
            f"{what} (nested {depth} levels deep; the format needs at most {max_depth})",
            path=path,
        )
    try:
        return json.loads(
            text,
            parse_float=_finite_float,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_keys,
        )
    except _Refused as e:
        raise error(f"{what} ({e})", path=path) from None
    except json.JSONDecodeError as e:
        raise error(f"{what} (not valid JSON: {e.msg} at line {e.lineno})", path=path) from None
    except ValueError as e:  # an integer of more than 4300 digits: Python will not read it
        reason = "an integer with too many digits" if "digits" in str(e) else _first_line(e)
        raise error(f"{what} ({reason})", path=path) from None
    except RecursionError:  # not reached after the depth check; kept as a guarantee
        raise error(f"{what} (nested too deeply)", path=path) from None


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__
