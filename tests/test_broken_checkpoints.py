"""The broken-checkpoint corpus through the real command line, as a user would meet it.

Each case (tests/support/broken_corpus.py) breaks one thing in a linked copy of a tiny synthetic
checkpoint and runs the cheapest command that must refuse it (`info` for what headers show,
`load` for values, `chat --input` where the story is a conversation) in a fresh process. The
target for every case: it ends within 60 s, exits non-zero, prints at most 4 lines that name
the broken file (or folder), no traceback, no "internal error".
`python -m benchmarks.broken_checkpoints --command all` runs every case through every command and
prints the table.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broken_corpus import BrokenCase, broken_cases, make_broken, run_case
from tests.support.warm_cli import WarmStarter

pytestmark = pytest.mark.slow

CASES = broken_cases()
SPEECH = Path(__file__).resolve().parents[1] / "assistant" / "data" / "hello.wav"


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)  # broken Mimi copies are 385 MB each


def test_the_corpus_covers_every_kind() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    culprits = {c.culprit for c in CASES}
    assert culprits == {"model", "mimi", "tokenizer", "config", "folder"}
    assert {c.command for c in CASES} == {"info", "load", "chat"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_checkpoint_gets_a_clear_answer(
    case: BrokenCase, tiny_checkpoint, work: Path, warm_starter: WarmStarter | None
) -> None:
    folder = make_broken(case, tiny_checkpoint("q4"), work / "broken")
    env = os.environ | {
        "ASSISTANT_HOME": str(work / "home"),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "100",
    }
    env.pop("ASSISTANT_DEBUG", None)
    outcome = run_case(
        case, folder, case.command, speech=SPEECH, env=env, timeout=60, starter=warm_starter
    )
    shown = "\n".join(outcome.lines)
    assert outcome.exit_code is not None, f"still running after 60 s:\n{shown}"
    assert outcome.exit_code != 0, shown
    assert not outcome.traceback and not outcome.internal, shown
    assert len(outcome.lines) <= 4, shown
    assert outcome.named, f"does not name {case.culprit}:\n{shown}"
    assert outcome.clean_refusal
