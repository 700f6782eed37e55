"""The hostile-input corpus through the real command line, as a user would meet it.

Each case (tests/support/hostile_corpus.py) prepares its files in a fresh folder and runs the
command that must refuse it in a fresh process. The target for every case: it ends within 60 s with
its exit code (1 for a file, 2 for a command-line mistake), prints at most 4 lines naming the
file or option, no traceback, no "internal error", and no file in the folder changed (the
input of a colliding --output above all).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests.support.hostile_corpus import KINDS, HostileCase, hostile_cases, run_hostile
from tests.support.warm_cli import WarmStarter

pytestmark = pytest.mark.slow

CASES = hostile_cases()


def test_the_corpus_covers_every_kind() -> None:
    assert len({c.name for c in CASES}) == len(CASES)
    counts = Counter(c.kind for c in CASES)
    assert set(counts) == set(KINDS) and min(counts.values()) >= 5, counts


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gets_a_clear_answer(
    case: HostileCase, tmp_path: Path, warm_starter: WarmStarter | None
) -> None:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "COLUMNS": "100"}
    env.pop("ASSISTANT_DEBUG", None)
    outcome = run_hostile(case, tmp_path, env, timeout=60, starter=warm_starter)
    shown = "\n".join(outcome.lines)
    # Exit code, at most 4 lines naming the culprit, no traceback, no file changed.
    assert outcome.verdict(case) == "ok", f"{outcome.verdict(case)} {outcome.changed}:\n{shown}"
