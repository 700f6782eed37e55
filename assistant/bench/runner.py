"""A whole bench run: check every variant, encode the input once, measure one after another.

Nothing is measured before every variant has been resolved and checked from its headers, and
variants of different architectures stop the run there. After that a variant that fails
(load error, bad data, Ctrl-C) is recorded and the others go on; the report is rewritten
after each variant, so what was measured is on disk whatever happens next.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..audio.sound_files import read_audio
from ..errors import AssistantError, BenchError
from ..paths import new_session_dir
from ..voice.memory import release_freed_memory
from .fidelity import compare
from .listening import listen
from .measure import Status, decode_variant, measure_variant, quiet
from .plots import write_plots
from .report import write_report
from .results import BenchRun, BenchSettings, VariantResult
from .speech import encode_speech
from .system import machine_info
from .variants import (
    Variant,
    VariantFailure,
    VariantRequest,
    check_variants,
    reference_order,
    require_same_architecture,
)

if TYPE_CHECKING:
    from ..stt import SpeechToText

log = logging.getLogger(__name__)

# Loads the speech recogniser: (it, whether its weights are the published ones).
Listener = Callable[[], tuple["SpeechToText", bool]]


@dataclass
class BenchOutcome:
    run: BenchRun
    interrupted: bool = False
    unexpected: list[BaseException] = field(default_factory=list)  # bugs, not user errors


def run_bench(
    requests: list[VariantRequest],
    pcm: np.ndarray,
    source: str,
    settings: BenchSettings,
    *,
    out: Path | None = None,
    download: bool = True,
    status: Status = quiet,
    listener: Listener | None = None,
) -> BenchOutcome:
    """Check, then measure every variant; partial results are written, not lost. With a
    `listener` (it loads speech to text), each variant's audio is transcribed at the end."""
    status("Checking the variants ...")
    variants, failures = check_variants(
        requests, download=download, check_memory=settings.check_memory
    )
    require_same_architecture(variants)
    if not variants:
        raise BenchError(
            "no variant can be measured: " + "; ".join(f"{f.label}: {f.message}" for f in failures)
        )
    mimi = _mimi_file(variants)
    config = variants[0].config
    status("Encoding the input with Mimi ...")
    speech = encode_speech(pcm, source, mimi, config.user_codebooks)

    folder = Path(out).expanduser() if out else new_session_dir("bench")
    folder.mkdir(parents=True, exist_ok=True)
    run = BenchRun(
        started=datetime.now(),
        folder=folder,
        machine=machine_info(),
        settings=settings,
        speech=speech,
        labels=[r.label for r in requests],
        failures=list(failures),
    )
    outcome = BenchOutcome(run)
    codes = speech.steps(settings.total_steps)
    write_report(run)
    current = None
    try:
        for v in reference_order(variants):
            current = v.label
            _measure_one(run, v, codes, outcome, status)
            write_report(run)
        for result in run.ordered:
            current = result.label
            status(f"{result.label}: Mimi decode")
            _decode_one(run, result, mimi, outcome)
            write_report(run)
        current = None
        if listener is not None:
            tokenizers = {v.label: v.files.text_tokenizer for v in variants}
            published = all(v.files.preset is not None for v in variants)
            _listen_all(run, listener, tokenizers, published, outcome, status)
            write_report(run)
    except KeyboardInterrupt:
        outcome.interrupted = True
        run.failures.append(VariantFailure(current or "-", "interrupted", "stopped by Ctrl-C"))
    finally:
        release_freed_memory()
        run.finished = not outcome.interrupted
        write_report(run)
        status("Plotting ...")
        write_plots(run)
    return outcome


def _measure_one(
    run: BenchRun,
    v: Variant,
    codes: np.ndarray,
    outcome: BenchOutcome,
    status: Status,
) -> None:
    ref = run.results.get(run.reference) if run.reference else None
    try:
        result = measure_variant(
            v,
            codes,
            run.settings,
            reference=ref.recording if ref else None,
            status=status,
        )
    except AssistantError as e:
        run.failures.append(VariantFailure(v.label, "measure", str(e)))
        return
    except Exception as e:  # MLX failing on one variant: keep the others
        log.error("measuring %s failed", v.label, exc_info=e)
        run.failures.append(VariantFailure(v.label, "measure", f"{type(e).__name__}: {e}"))
        traceback.clear_frames(e.__traceback__)  # keep the trace, not the model it reached
        outcome.unexpected.append(e)
        return
    finally:
        release_freed_memory()
    if ref is None:  # the first variant measured is the reference (highest bits per weight)
        run.reference = v.label
        ref = result
    result.fidelity = compare(result.recording, ref.recording, ref.label)
    run.results[v.label] = result


def _decode_one(run: BenchRun, result: VariantResult, mimi: Path, outcome: BenchOutcome) -> None:
    audio = run.folder / f"moshi-{_file_name(result.label)}.wav"
    try:
        decode_variant(result, mimi, audio)
    except AssistantError as e:
        run.failures.append(VariantFailure(result.label, "decode", str(e)))
    except Exception as e:  # rustymimi failing: the model figures still stand
        log.error("decoding %s failed", result.label, exc_info=e)
        run.failures.append(VariantFailure(result.label, "decode", f"{type(e).__name__}: {e}"))
        outcome.unexpected.append(e)


def _listen_all(
    run: BenchRun,
    listener: Listener,
    tokenizers: dict[str, Path | None],
    published: bool,
    outcome: BenchOutcome,
    status: Status,
) -> None:
    status("Loading speech to text ...")
    try:
        stt, stt_published = listener()
    except AssistantError as e:
        run.listening_note = f"not measured: {e}"
        return
    for result in run.ordered:
        tokenizer = tokenizers.get(result.label)
        if result.audio_file is None or tokenizer is None:
            continue
        status(f"{result.label}: listening")
        try:
            audio = read_audio(result.audio_file)
            result.listening = listen(
                stt,
                audio,
                result.recording.tokens,
                tokenizer,
                meaningful=published and stt_published,
            )
        except AssistantError as e:
            run.failures.append(VariantFailure(result.label, "listen", str(e)))
        except Exception as e:  # the recogniser failing: the other figures still stand
            log.error("listening to %s failed", result.label, exc_info=e)
            run.failures.append(VariantFailure(result.label, "listen", f"{type(e).__name__}: {e}"))
            outcome.unexpected.append(e)


def _mimi_file(variants: list[Variant]) -> Path:
    """The one Mimi every variant shares (--mimi-file is already in every variant's files)."""
    for v in variants:
        if v.files.mimi is not None:
            return v.files.mimi
    raise BenchError(
        "none of the checkpoints has a Mimi codec file: pass one with --mimi-file",
        path=variants[0].files.model.parent,
    )


def _file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "variant"
