"""report.json (everything, machine-readable) and report.md (the tables and how to read them)."""

from __future__ import annotations

import json
from pathlib import Path

from ..frames import FRAME_MS
from .results import BenchRun
from .tables import headline, markdown, sections

JSON_NAME = "report.json"
MARKDOWN_NAME = "report.md"
LATENCY_PLOT = "latency.png"
STEPS_PLOT = "step_times.png"
LISTENING_PLOT = "listening.png"

METHOD = {
    "input": "The user's speech is encoded with Mimi once; every variant gets the same codes "
    "(looped when the conversation is longer than the speech), the same sampling and seed.",
    "load": "Seconds to read and evaluate the weights (MLX loads lazily, so the load is forced). "
    "Cold: after evicting the model file from the OS page cache where the OS allows it (Linux), "
    "else the first load this run; marked * (unreliable) when the OS could not evict it, or when "
    "the file is small enough (under 512 MiB) to come from the drive's own cache. Warm: loaded "
    "again right after, the file now cached.",
    "memory": "Each variant's own increase, over the warm load and the whole conversation: MLX "
    "+peak is MLX's peak above what MLX held when the warm load began (the weights, the KV "
    "ring, working buffers); RSS +peak is the process's resident memory (sampled every 10 ms) "
    "above what it was then. The absolute figures are in report.json.",
    "steps": "Wall time of each engine step (one 80 ms frame: main transformer, depformer, "
    "sampling, the tokens and text logits read back), after the engine's own warm-up (as a chat "
    "does it) and the bench's warm-up steps. When the run's sampling is not a chat's (greedy, "
    "by default, for fidelity), the steps are timed again sampled as a chat: both rows are shown. "
    f"Real-time factor: mean step / {FRAME_MS:.0f} ms (below 1 keeps up with speech, the model "
    "alone).",
    "codec": "Mimi encode: the user's speech, per frame. Mimi decode: each variant's own audio "
    "codes, per frame, with a fresh decoder, after all models are measured; the audio is saved "
    "as moshi-<variant>.wav.",
    "fidelity": "The reference (highest bits per weight) runs free; every other variant is "
    "teacher-forced: after each step its history is overwritten with the reference's tokens, "
    "so each step is compared given the same past instead of two diverging conversations. "
    "Agreement: share of steps where the variant samples the reference's token (text), and of "
    "steps x codebooks (audio; within a step the depformer runs on the variant's own earlier "
    "codebooks). KL: mean over steps of KL(reference || variant) of the softmaxed text logits, "
    "in nats. Every step counts, warm-up included (forced, each is a fair comparison). "
    "The reference against itself is 100 %, 100 %, 0.",
    "listening": "Each variant's decoded audio (moshi-<variant>.wav) is transcribed by speech "
    "recognition (Kyutai STT on MLX, greedy) and compared, word by word (lower case, no "
    "punctuation), with the text the variant itself produced on its text stream: word error "
    "rate = (substitutions + deletions + insertions) / words said, as the Moshi paper judges "
    "generated speech. It shows whether the audio still says what the model meant, which token "
    "agreement cannot. Meaningless on random weights (a synthetic model or recogniser).",
}


def write_report(run: BenchRun) -> tuple[Path, Path]:
    """Write (or rewrite, as variants finish) both files; returns their paths."""
    folder = run.folder
    data = run.to_dict() | {"method": METHOD}
    json_path = folder / JSON_NAME
    _atomic_write(json_path, json.dumps(data, indent=2) + "\n")
    md_path = folder / MARKDOWN_NAME
    _atomic_write(md_path, render_markdown(run))
    return json_path, md_path


def render_markdown(run: BenchRun) -> str:
    lines = [f"# assistant bench, {run.started:%Y-%m-%d %H:%M}", ""]
    lines += [f"- Machine: {run.machine.summary()}"] + [f"- {line}" for line in headline(run)]
    if not run.complete:
        if any(f.stage == "interrupted" for f in run.failures):
            state = "interrupted"
        elif run.finished:
            state = "some variants could not be measured, see Errors"
        else:
            state = "still running, or the bench stopped"
        lines.append(f"- **Partial report** ({state}): only the variants below were measured")
    for section in sections(run):
        lines += ["", f"## {section.title}", "", markdown(section)]
    if run.ordered:
        kinds = sorted({r.cold_load_kind for r in run.ordered})
        lines += ["", f"Cold loads: {'; '.join(kinds)}."]
    if run.failures:
        lines += ["", "## Errors", ""]
        lines += [f"- **{f.label}** ({f.stage}): {f.message}" for f in run.failures]
    if run.ordered:
        lines += [
            "",
            "## Plots",
            "",
            f"![Step latency per variant]({LATENCY_PLOT})",
            "",
            f"![Step time across the conversation]({STEPS_PLOT})",
        ]
        if any(r.listening is not None for r in run.ordered):
            lines += ["", f"![Word error rate per variant]({LISTENING_PLOT})"]
    lines += ["", "## How these are measured", ""]
    lines += [f"- **{key}**: {text}" for key, text in METHOD.items()]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    # Rewritten after every variant: a reader (or a crash) never sees half a file.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)
