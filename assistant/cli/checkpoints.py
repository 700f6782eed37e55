"""Checkpoint commands: `info` (inspect without loading), `download`, `load`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ..checkpoint import hub
from ..checkpoint.catalogue import Preset, find_preset, preset
from ..checkpoint.resolve import CheckpointFiles, resolve
from ..checkpoint.stt_hub import STT_NAME, STT_PRESET, download_stt
from ..checkpoint.stt_validate import inspect_stt, require_valid_stt, stt_files
from ..checkpoint.validate import CheckpointReport, inspect_checkpoint, require_valid
from ..console import console, err_console
from ..errors import MissingFilesError
from ..voice.memory import GiB, estimate, memory_warning

if TYPE_CHECKING:
    from ..voice.loader import LoadedModel
    from ..voice.memory import MemoryEstimate
from .options import (
    MAX_STEPS,
    ConfigFile,
    MimiFile,
    ModelFile,
    Quant,
    Target,
    TextTokenizerFile,
    Voice,
    checkpoint_spec,
    in_range,
)

MAX_PROBLEMS_SHOWN = 20


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("download")(download)
    app.command("load")(load)


def info(
    target: Target = None,
    voice: Voice = "moshiko",
    quant: Quant = None,
    model_file: ModelFile = None,
    mimi_file: MimiFile = None,
    text_tokenizer: TextTokenizerFile = None,
    config: ConfigFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Show what a checkpoint is, from file headers alone, and check it against its config."""
    spec = checkpoint_spec(
        target,
        voice=voice,
        quant=quant,
        model_file=model_file,
        mimi_file=mimi_file,
        text_tokenizer=text_tokenizer,
        config=config,
    )
    try:
        files = resolve(spec)
        report = inspect_checkpoint(files)
    except MissingFilesError:
        # Not downloaded: a published preset can still be inspected from its header online.
        remote = find_preset(target) if target else preset(voice, quant or "q4")
        if remote is None or hub.offline():
            raise
        report = _remote_report(remote)
    if as_json:
        data = report.to_dict()
        data["memory"] = _memory(report).to_dict()
        console.print_json(json.dumps(data))
        if report.problems:
            raise typer.Exit(1)
        return
    # A broken checkpoint gets the same one line as `load` and `chat` (--json lists it all).
    require_valid(report)
    render_report(report)


def download(
    voice: Voice = "moshiko",
    quant: Annotated[str, typer.Option("--quant", "-q", help="q4, q8 or bf16.")] = "q4",
    stt: Annotated[
        bool,
        typer.Option(
            "--stt", help=f"Kyutai's speech-to-text model instead ({STT_PRESET.repo_id})."
        ),
    ] = False,
) -> None:
    """Fetch a published checkpoint into the Hugging Face cache (resumable, with progress)."""
    if stt:
        _download_stt()
        return
    p = preset(voice, quant)
    missing = [n for n, path in hub.cached_files(p).items() if path is None]
    if missing and not hub.offline():
        console.print(
            f"Downloading {p.repo_id}: {', '.join(missing)} "
            f"(about {p.download_size / 1e9:.1f} GB in all) into {hub.cache_dir()}"
        )
    files = resolve(checkpoint_spec(p.name, voice=voice, quant=quant), download=True)
    report = inspect_checkpoint(files)
    render_report(report)
    if report.problems:
        raise typer.Exit(1)
    console.print(f"[green]Ready:[/] {p.name} is in {hub.cache_dir()}")


def _download_stt() -> None:
    p = STT_PRESET
    missing = [n for n, path in hub.cached_files(p).items() if path is None]
    if missing and not hub.offline():
        console.print(
            f"Downloading {p.repo_id}: {', '.join(missing)} "
            f"(about {p.download_size / 1e9:.1f} GB in all) into {hub.cache_dir()}"
        )
    folder = download_stt()
    report = inspect_stt(stt_files(folder))
    require_valid_stt(report)
    c = report.config
    console.print(
        f"[green]Ready:[/] {STT_NAME} ({report.model.parameter_count / 1e9:.2f} B parameters, "
        f"{c.num_layers} layers, text delay {c.audio_delay_seconds:g} s) is in {folder}",
        soft_wrap=True,
    )


def load(
    target: Target = None,
    voice: Voice = "moshiko",
    quant: Quant = None,
    model_file: ModelFile = None,
    mimi_file: MimiFile = None,
    text_tokenizer: TextTokenizerFile = None,
    config: ConfigFile = None,
    skip_memory_check: Annotated[
        bool, typer.Option("--skip-memory-check", help="Load even if it looks too big.")
    ] = False,
    steps: Annotated[
        int,
        typer.Option(
            help="Then stream this many frames (user silence) and time them.",
            callback=in_range(0, MAX_STEPS),
        ),
    ] = 0,
) -> None:
    """Validate, load onto MLX and report the real load time and memory."""
    from ..voice.loader import load as load_model
    from ..voice.memory import memory_snapshot

    spec = checkpoint_spec(
        target,
        voice=voice,
        quant=quant,
        model_file=model_file,
        mimi_file=mimi_file,
        text_tokenizer=text_tokenizer,
        config=config,
    )
    files = resolve(spec)
    with console.status(f"Loading {files.label} ..."):
        loaded = load_model(files, check_memory=not skip_memory_check)
    mem = memory_snapshot()
    m = loaded.report.model
    console.print(
        f"Loaded {files.label} ({m.quant_label}, {m.parameter_count / 1e9:.2f} B parameters, "
        f"{m.bits_per_weight:.2f} bits/weight) in {loaded.load_seconds:.2f} s; "
        f"MLX memory active {mem['active'] / GiB:.2f} GiB, peak {mem['peak'] / GiB:.2f} GiB"
    )
    tight = memory_warning(loaded.memory, files.label, m.quant_label)
    if tight:  # (the loader logs it; a command line says it)
        err_console.print(f"[yellow]warning:[/] {tight}", soft_wrap=True)
    if steps > 0:
        _time_steps(loaded, steps)


def _time_steps(loaded: LoadedModel, steps: int) -> None:
    """Drive the engine frame by frame on user silence and report step latency."""
    import time

    import numpy as np

    from ..voice.engine import StreamingEngine

    engine = StreamingEngine(loaded.model, loaded.config, text_tokenizer=loaded.text_tokenizer)
    engine.warmup()
    silence = np.zeros(loaded.config.user_codebooks, dtype=np.int32)
    times = []
    with console.status(f"Streaming {steps} frames ..."):
        for _ in range(steps):
            started = time.perf_counter()
            engine.step(silence)
            times.append((time.perf_counter() - started) * 1000)
    ms = np.array(times)
    p50, p95 = np.percentile(ms, 50), np.percentile(ms, 95)
    verdict = "keeps up with" if p95 < 80 else "is slower than"
    console.print(
        f"{steps} steps: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {ms.max():.1f} ms per step; "
        f"the model alone {verdict} real time (80 ms per frame)"
    )


# --- rendering -------------------------------------------------------------------------------


def render_report(report: CheckpointReport) -> None:
    m = report.model
    q = m.quantization
    table = Table(title=f"Checkpoint {report.files.label}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("model file", str(m.path))
    table.add_row("size", f"{m.file_size:,} bytes ({m.file_size / 1e9:.2f} GB)")
    table.add_row("tensors", f"{m.tensor_count} ({_dtypes(m.dtype_counts)})")
    table.add_row(
        "quantization",
        f"{q.bits}-bit, group size {q.group_size} (from tensor shapes)" if q else "none (bf16)",
    )
    table.add_row("bits per weight", f"{m.bits_per_weight:.3f} (scales, biases and norms included)")
    table.add_row("parameters", f"{m.parameter_count:,} ({m.parameter_count / 1e9:.2f} B)")
    table.add_row("architecture from", m.config_source)
    c = m.config
    table.add_row(
        "transformer",
        f"dim {c.dim}, {c.num_layers} layers, {c.num_heads} heads, context {c.context}, "
        f"MLP hidden {c.main_hidden}",
    )
    table.add_row(
        "depformer",
        f"{c.dep_q} slices x {c.depformer_num_layers} layers, dim {c.depformer_dim}, "
        f"{c.depformer_num_heads} heads",
    )
    table.add_row(
        "vocabularies",
        f"text {c.text_card} (+1 initial), audio {c.card} (+1 padding), {c.n_q} codebooks "
        f"({c.user_codebooks} from the user, {c.dep_q} generated)",
    )
    if report.codec:
        k = report.codec
        table.add_row(
            "Mimi codec",
            f"{k.path} ({k.file_size / 1e6:.1f} MB, {k.codebooks} codebooks, "
            f"{k.parameter_count / 1e6:.1f} M parameters)",
        )
    else:
        table.add_row("Mimi codec", "[yellow]not found[/] (needed for conversations)")
    if report.text_tokenizer:
        t = report.text_tokenizer
        table.add_row("text tokenizer", f"{t.path} ({t.vocab_size} pieces)")
    else:
        table.add_row("text tokenizer", "[yellow]not found[/] (text output shows token ids)")
    est = _memory(report)
    colour = "red" if not est.fits else "yellow" if est.tight else "green"
    machine = est.machine
    table.add_row(
        "memory needed",
        f"~{est.on_gpu / GiB:.1f} GiB for the model (weights {est.weights / GiB:.1f}, KV cache "
        f"{est.kv_cache / GiB:.2f}, margin {est.margin / GiB:.2f}) against "
        f"{machine.gpu_label} of {machine.gpu_budget / GiB:.1f} GiB; ~{est.total / GiB:.1f} GiB "
        f"in all with {est.codec_instances} codec instances ({est.codec / GiB:.2f}) against "
        f"{machine.ram / GiB:.1f} GiB RAM: [{colour}]{est.verdict}[/]",
    )
    console.print(table)
    problems = report.problems
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s):[/]")
        for path, problem in problems[:MAX_PROBLEMS_SHOWN]:
            console.print(f"  {path.name}: {problem}", soft_wrap=True)
        if len(problems) > MAX_PROBLEMS_SHOWN:
            console.print(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more (--json lists all)")
    else:
        console.print("[green]Valid:[/] every tensor matches the architecture.")


def _dtypes(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {d}" for d, n in counts.items())


def _memory(report: CheckpointReport) -> MemoryEstimate:
    codec = report.codec.file_size if report.codec else 0
    return estimate(report.model.config, report.model.file_size, codec)


def _remote_report(p: Preset) -> CheckpointReport:
    """Inspect a published model that is not downloaded, from its header on the hub."""
    from ..checkpoint.inspection import inspect_header

    model = inspect_header(hub.fetch_remote_header(p))
    model.file_size = p.model_size
    files = CheckpointFiles(model=model.path, preset=p)
    return CheckpointReport(files, model, None, None)
