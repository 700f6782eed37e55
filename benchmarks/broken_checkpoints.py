"""Every broken checkpoint of the corpus through the real command line: what the user sees.

    python -m benchmarks.broken_checkpoints [--source DIR] [--command cheapest|info|load|chat|all]

Makes a tiny synthetic checkpoint (or takes `--source`), breaks a linked copy of it in each of
the corpus' ways (tests/support/broken_corpus.py), runs `assistant <command>` on it in a fresh
process with a timeout, and prints a Markdown table: exit code, seconds, lines printed, whether they
name the broken file, and the verdict against the target (ended in time, non-zero, at most 4
lines naming the file, no traceback, no "internal error"). `cheapest` runs each case with the
cheapest command that must refuse it (`info` for headers, `load` for values); `all` runs every
case through `info`, `load` and `chat --input` (cases `info` cannot see are skipped there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from assistant.checkpoint.synthetic.checkpoint import make_checkpoint
from assistant.checkpoint.writing import parse_quant
from tests.support.broken_corpus import Outcome, broken_cases, make_broken, run_case

COMMANDS = ("info", "load", "chat")
ORDER = {"info": 0, "load": 1, "chat": 2}


def commands_for(case_command: str, wanted: str) -> list[str]:
    if wanted == "cheapest":
        return [case_command]
    if wanted == "all":
        # A fault only loading reveals (NaN values) is not for `info`, which reads headers.
        return [c for c in COMMANDS if ORDER[c] >= ORDER[case_command]]
    return [wanted] if ORDER[wanted] >= ORDER[case_command] else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="a good checkpoint folder (default: tiny q4)")
    parser.add_argument("--command", default="cheapest", choices=["cheapest", "all", *COMMANDS])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="broken-"))
    try:
        source = (
            args.source
            or make_checkpoint(work / "source", config_name="tiny", quant=parse_quant("q4")).folder
        )
        speech = Path(__file__).resolve().parents[1] / "assistant" / "data" / "hello.wav"
        env = os.environ | {
            "ASSISTANT_HOME": str(work / "home"),
            "HF_HUB_OFFLINE": "1",
            "COLUMNS": "100",
        }
        env.pop("ASSISTANT_DEBUG", None)
        outcomes: list[tuple[str, Outcome]] = []
        print("| # | case | fault | command | exit | seconds | lines | names the file | ok |")
        print("|---|---|---|---|---|---|---|---|---|")
        cases = [c for c in broken_cases() if not args.only or args.only in c.name]
        for n, case in enumerate(cases, start=1):
            for command in commands_for(case.command, args.command):
                folder = make_broken(case, source, work / f"case-{n}-{command}")
                try:
                    o = run_case(
                        case, folder, command, speech=speech, env=env, timeout=args.timeout
                    )
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                outcomes.append((case.fault, o))
                code = "timeout" if o.exit_code is None else str(o.exit_code)
                print(
                    f"| {n} | {case.name} | {case.fault} | {command} | {code} | "
                    f"{o.seconds:.1f} | {len(o.lines)} | {'yes' if o.named else 'NO'} | "
                    f"{'yes' if o.clean_refusal else 'NO'} |",
                    flush=True,
                )
        print()
        for _, o in outcomes:
            message = o.lines[-1] if o.lines else "(nothing)"
            print(f"- {o.case} ({o.command}): {message}")
        good = sum(o.clean_refusal for _, o in outcomes)
        print()
        print(
            f"{len(cases)} cases, {len(outcomes)} runs: {good} clean refusals; slowest "
            f"{max(o.seconds for _, o in outcomes):.1f} s; at most "
            f"{max(len(o.lines) for _, o in outcomes)} lines"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
