"""Every case of the hostile-input corpus through the real command line: what the user sees.

    python -m benchmarks.hostile_input [--kind audio|collision|special file|number] [--only TEXT]
                                    [--checkout OTHER_CHECKOUT] [--timeout S]

Runs each case of tests/support/hostile_corpus.py (audio files whose header lies or whose
samples are not numbers, an --output reaching the --input, special files where a file is read,
numbers out of range) in a fresh folder and a fresh process, and prints a Markdown table: exit
code, seconds, lines printed, and the verdict against the target (its exit code, at most 4 lines
naming the file or option, no traceback, no file changed). `--checkout` runs another checkout's
`assistant` on the same cases (the code before a change, say), with this one's corpus; a summary
per kind ends the table."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter
from pathlib import Path

from tests.support.hostile_corpus import hostile_cases, run_hostile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", help="only the cases of this kind")
    parser.add_argument("--only", help="only the cases whose name contains this")
    parser.add_argument("--checkout", type=Path, help="run this checkout's assistant instead")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    env = os.environ | {"HF_HUB_OFFLINE": "1", "COLUMNS": "100"}
    env.pop("ASSISTANT_DEBUG", None)
    if args.checkout is not None:
        env["PYTHONPATH"] = str(args.checkout.resolve())
    cases = [
        c
        for c in hostile_cases()
        if (args.kind is None or c.kind == args.kind) and (args.only or "") in c.name
    ]
    print("| kind | case | exit | s | lines | verdict |")
    print("|---|---|---|---|---|---|")
    total, missed = Counter[str](), Counter[str]()
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="hostile-") as folder:
            outcome = run_hostile(case, Path(folder), env, timeout=args.timeout)
        verdict = outcome.verdict(case)
        total[case.kind] += 1
        missed[case.kind] += verdict != "ok"
        code = "-" if outcome.exit_code is None else str(outcome.exit_code)
        print(
            f"| {case.kind} | {case.name} | {code} | {outcome.seconds:.1f} | "
            f"{len(outcome.lines)} | {verdict} |",
            flush=True,
        )
    summary = ", ".join(f"{k} {total[k] - missed[k]}/{total[k]}" for k in total)
    print(
        f"\nOn target: {summary} ({sum(total.values()) - sum(missed.values())} of "
        f"{sum(total.values())})."
    )


if __name__ == "__main__":
    main()
