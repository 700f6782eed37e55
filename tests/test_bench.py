"""`assistant bench` on tiny synthetic checkpoints: every output, sensible figures, and the
failures a user can cause (other architectures, a missing checkpoint, an unreadable input)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from huggingface_hub import constants
from typer.testing import CliRunner

from assistant.audio.sound_files import read_audio, write_wav
from assistant.bench import runner as bench_runner
from assistant.bench.results import BenchSettings, same_sampling
from assistant.bench.runner import run_bench
from assistant.bench.system import SMALL_FILE_BYTES, prepare_cold_load
from assistant.bench.tables import sections
from assistant.bench.variants import requests_for
from assistant.checkpoint.config import TINY
from assistant.checkpoint.layout import Q4, Q8
from assistant.checkpoint.quantize import quantize_folder
from assistant.cli import _register, app
from assistant.errors import (
    BenchError,
    CheckpointError,
    IncompatibleVariantsError,
    UsageError,
)
from assistant.frames import FRAME_SAMPLES, SAMPLE_RATE
from assistant.voice.sampling import SamplingConfig
from tests.support.helpers import save_tiny_model

_register()
runner = CliRunner()
# 8 measured steps: q8's text tokens agree with bf16's on 70-100 % of them whatever the seed
# (with 6, one seed fell to 5 of 8 against the 50 % bound; this test's seed is fixed, but the
# margin should not hang on it).
STEPS, WARMUP = 8, 2
# Where a test's claim is about what a run does with a failure, not about its figures, the
# fewest steps that still decode audio (the v0.1 delays hold the audio back one step).
FEW_STEPS, FEW_WARMUP = 2, 1


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Half a second of the bundled sample: 7 frames (the last one padded), so the 10 steps
    loop it."""
    pcm = read_audio(Path(__file__).parents[1] / "assistant" / "data" / "hello.wav")
    return write_wav(tmp_path_factory.mktemp("speech") / "speech.wav", pcm[: SAMPLE_RATE // 2])


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three frames of the bundled sample, for the runs that need some input, not much."""
    pcm = read_audio(Path(__file__).parents[1] / "assistant" / "data" / "hello.wav")
    return write_wav(tmp_path_factory.mktemp("short") / "speech.wav", pcm[: 3 * FRAME_SAMPLES])


def bench(
    *args: str,
    out: Path,
    speech: Path | None = None,
    steps: int = STEPS,
    warmup: int = WARMUP,
):
    extra = ["--input", str(speech)] if speech else []
    argv = ["bench", *args, "--steps", str(steps), "--warmup", str(warmup), "--out", str(out)]
    return runner.invoke(app, argv + extra, env={"COLUMNS": "100"})


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@dataclass(frozen=True)
class FullRun:
    """`assistant bench` over q4, q8 and bf16 (the bf16 named twice: its copy), listened to."""

    folders: list[Path]  # as given: q4, q8, bf16, bf16 again
    labels: list[str]  # the rows: q4, q8, bf16, bf16#2
    out: Path
    exit_code: int
    output: str

    def report(self) -> dict[str, Any]:
        return json.loads((self.out / "report.json").read_text())

    def variants(self) -> dict[str, dict[str, Any]]:
        return {v["label"]: v for v in self.report()["variants"]}


@pytest.fixture(scope="module")
def full_run(
    tiny_checkpoint, tiny_stt: Path, speech: Path, tmp_path_factory: pytest.TempPathFactory
) -> FullRun:
    """One whole bench run (the costly part of this file) that several tests each read a
    different side of. q4 and q8 are the seed's bf16 weights quantized by `make-checkpoint
    --from`, as the published ones are quantized from theirs."""
    tmp = tmp_path_factory.mktemp("full-run")
    bf16 = tiny_checkpoint("bf16")
    q4 = quantize_folder(tmp / "from-bf16-q4", bf16, Q4).folder
    q8 = quantize_folder(tmp / "from-bf16-q8", bf16, Q8).folder
    folders = [q4, q8, bf16, bf16]
    out = tmp / "bench"
    args = [a for f in folders for a in ("--checkpoint", str(f))]
    with pytest.MonkeyPatch.context() as mp:  # what conftest's autouse fixtures give a test
        home = tmp / "hf_home"
        mp.setenv("HF_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        mp.setenv("ASSISTANT_HOME", str(tmp / "assistant_home"))
        mp.setenv("ASSISTANT_SETTINGS", str(tmp / "settings.json"))
        result = bench(*args, "--stt", str(tiny_stt), out=out, speech=speech)
    labels = [q4.name, q8.name, bf16.name, f"{bf16.name}#2"]
    return FullRun(folders, labels, out, result.exit_code, result.output)


@pytest.mark.slow  # (the module's one whole bench run, ~17 s of CPU)
def test_q4_q8_bf16_all_outputs(full_run: FullRun) -> None:
    assert full_run.exit_code == 0, full_run.output
    out, labels, folders = full_run.out, full_run.labels, full_run.folders
    output = full_run.output
    titles = ("Size, load (cold/warm) and memory", "Speed in ms", f"Fidelity against {labels[2]}")
    assert all(title in output for title in titles)
    assert "as chat" in output and "* cold load unreliable" in output
    assert f"{labels[2]} (ref)" in output and str(out) in output

    data = full_run.report()
    assert data["complete"] is True and data["errors"] == []
    assert data["reference"] == labels[2]  # the highest bits per weight
    assert data["variants_requested"] == labels
    assert data["input"]["frames"] == 7 and data["input"]["looped"] is True
    assert data["machine"]["mlx_version"] == mx.__version__
    assert data["settings"]["sampling"]["greedy"] is True
    assert data["settings"]["also_timed_sampled_as_chat"] is True
    variants = full_run.variants()
    assert list(variants) == labels  # rows in the order asked for
    q4, q8, bf16, copy = (variants[label] for label in labels)
    assert (q4["quantization"], q8["quantization"], bf16["quantization"]) == ("q4", "q8", "bf16")
    assert q4["bits_per_weight"] < q8["bits_per_weight"] < bf16["bits_per_weight"]
    for v, folder in zip((q4, q8, bf16, copy), folders, strict=True):
        assert v["size_on_disk_bytes"] == Path(v["model_file"]).stat().st_size
        assert Path(v["model_file"]).parent == folder
        assert v["load"]["cold_s"] > 0 and v["load"]["warm_s"] > 0
        assert v["load"]["cold_kind"]
        # A tiny file can come from the drive's cache whatever the OS does: marked unreliable.
        assert v["load"]["cold_reliable"] is False and "small enough" in v["load"]["cold_doubt"]
        mem = v["memory"]
        assert 0 < mem["mlx_active_after_load_bytes"] <= mem["mlx_peak_bytes"]
        assert mem["process_rss_peak_bytes"] >= mem["process_rss_before_load_bytes"] > 0
        # The variant's own increase: its weights at least, far below the whole process.
        weights = mem["mlx_active_after_load_bytes"] - mem["mlx_before_load_bytes"]
        assert mem["mlx_increase_bytes"] == mem["mlx_peak_bytes"] - mem["mlx_before_load_bytes"]
        assert mem["mlx_increase_bytes"] >= weights > 0
        rss_increase = mem["process_rss_increase_bytes"]
        assert rss_increase == mem["process_rss_peak_bytes"] - mem["process_rss_before_load_bytes"]
        assert rss_increase < mem["process_rss_peak_bytes"] / 2
        if sys.platform == "linux":  # freed heap handed back first (malloc_trim), so the
            # weights show whatever was measured before (the reference, measured first)
            assert rss_increase > v["size_on_disk_bytes"] / 2
        steps = v["step_ms"]
        assert steps["count"] == STEPS and len(v["step_ms_all"]) == STEPS + WARMUP
        assert 0 < steps["p50"] <= steps["p95"] <= steps["p99"] <= steps["max"]
        assert v["real_time_factor"] == pytest.approx(steps["mean"] / 80, rel=1e-3)
        # Greedy for fidelity, so the steps were timed again as a chat samples them.
        chat = v["step_ms_sampled_as_chat"]
        assert chat["count"] == STEPS and len(v["step_ms_sampled_as_chat_all"]) == STEPS + WARMUP
        assert 0 < chat["p50"] <= chat["max"]
        assert v["mimi_decode_ms_per_frame"]["count"] == STEPS + WARMUP - max(TINY.delays)
        assert (out / v["audio_file"]).stat().st_size > 0
        f = v["fidelity"]
        assert f["reference"] == labels[2] and f["steps"] == STEPS + WARMUP
        assert 0 <= f["text_agreement_percent"] <= 100
        assert 0 <= f["audio_agreement_percent"] <= 100
        assert len(f["audio_agreement_per_codebook_percent"]) == TINY.dep_q
        assert f["text_kl_mean_nats"] >= 0 and f["text_kl_max_nats"] >= f["text_kl_mean_nats"]
    # The reference against itself, exactly.
    f = bf16["fidelity"]
    assert f["text_agreement_percent"] == 100 and f["audio_agreement_percent"] == 100
    assert f["text_kl_mean_nats"] == 0 and f["text_kl_max_nats"] == 0
    assert f["audio_agreement_per_codebook_percent"] == [100] * TINY.dep_q
    # Quantizations of those weights: 8 bits follow them closely, 4 bits less. These 8 greedy
    # steps are deterministic: q8 agrees on 100 % of the text tokens and 89 % of the audio ones
    # with 1/19 of q4's KL (the weights of seeds 1-3 give 62-100 %, 81-95 % and 1/20-1/21;
    # over 14 steps 79-93 %, 84-92 % and 1/21-1/22), so the bounds below have a wide margin.
    f4, f8 = q4["fidelity"], q8["fidelity"]
    assert 0 < f8["text_kl_mean_nats"] < f4["text_kl_mean_nats"]
    assert f8["text_agreement_percent"] > 50 and f8["audio_agreement_percent"] > 50
    assert (
        bf16["memory"]["mlx_active_after_load_bytes"] > q4["memory"]["mlx_active_after_load_bytes"]
    )

    md = (out / "report.md").read_text()
    assert "## Fidelity against" in md and "| variant |" in md and "teacher-forced" in md
    assert "| as chat |" in md and "* cold load unreliable" in md
    assert "Partial report" not in md and "## Errors" not in md
    for name in ("latency.png", "step_times.png"):
        assert f"]({name})" in md
        width, height = png_size(out / name)
        assert width >= 600 and height >= 300


@pytest.mark.slow  # (the module's one whole bench run, ~17 s of CPU)
def test_fidelity_follows_precision_and_a_copy_of_the_reference_matches_it(
    full_run: FullRun,
) -> None:
    assert full_run.exit_code == 0, full_run.output
    data = full_run.report()
    assert data["complete"] is True and data["errors"] == []
    q4, q8, bf16, copy = (full_run.variants()[label]["fidelity"] for label in full_run.labels)
    assert data["reference"] == full_run.labels[2] == full_run.folders[3].name
    # The same weights, teacher-forced with the reference's tokens, give the same steps.
    for f in (bf16, copy):
        agreement = (f["text_agreement_percent"], f["audio_agreement_percent"])
        assert agreement == (100, 100) and f["text_kl_mean_nats"] == 0
    # Quantized from those weights: 8 bits stay closer to them than 4 bits.
    assert 0 < q8["text_kl_mean_nats"] < q4["text_kl_mean_nats"]


def test_a_run_sampled_as_a_chat_times_its_steps_once(
    tiny_checkpoint, short_speech: Path, tmp_path: Path
) -> None:
    settings = BenchSettings(steps=FEW_STEPS, warmup=FEW_WARMUP, sampling=SamplingConfig(seed=3))
    assert settings.chat_sampling is None
    requests = requests_for(voice="moshiko", quants=[], checkpoints=[str(tiny_checkpoint("bf16"))])
    run = run_bench(requests, read_audio(short_speech), "test speech", settings, out=tmp_path).run
    [result] = run.ordered
    assert result.chat_step_ms is None and len(result.step_ms) == FEW_STEPS + FEW_WARMUP
    assert [row[1] for row in sections(run)[1].rows] == ["sampled"]


def test_chat_sampling_is_timed_only_when_the_run_samples_otherwise() -> None:
    chat = SamplingConfig(seed=5)
    assert BenchSettings(sampling=replace(SamplingConfig.greedy(), seed=5)).chat_sampling == chat
    assert BenchSettings(sampling=SamplingConfig(0.7, 25, 0.8, 250, 9)).chat_sampling is None
    assert BenchSettings(sampling=SamplingConfig(0.7, 50, 0.8, 250, 5)).chat_sampling == chat
    greedy_other_k = SamplingConfig(0.0, 1, 0.0, 1, None)
    assert same_sampling(greedy_other_k, SamplingConfig.greedy())


def test_cold_loads_are_marked_unreliable_when_a_cache_may_have_served_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = tmp_path / "small.safetensors"
    small.write_bytes(b"x" * 4096)
    big = tmp_path / "big.safetensors"
    with big.open("wb") as f:  # sparse: no disk used
        f.truncate(SMALL_FILE_BYTES + 1)
    if hasattr(os, "posix_fadvise"):
        assert prepare_cold_load(big).doubt is None
        assert "drive's own cache" in (prepare_cold_load(small).doubt or "")
    monkeypatch.delattr(os, "posix_fadvise", raising=False)  # as on macOS
    cold = prepare_cold_load(big)
    assert "first load this run" in cold.kind and "cannot evict" in (cold.doubt or "")


def test_different_architectures_are_refused_naming_both(
    tiny_checkpoint, speech: Path, tmp_path: Path
) -> None:
    other = tmp_path / "two-layers-more"
    config = replace(TINY, num_layers=TINY.num_layers + 2)
    save_tiny_model(other / "model.q4.safetensors", Q4, config)
    config.write(other / "config.json")
    q4 = tiny_checkpoint("q4")
    out = tmp_path / "bench"
    result = bench("--checkpoint", str(q4), "--checkpoint", str(other), out=out, speech=speech)
    assert result.exit_code != 0
    e = result.exception
    assert isinstance(e, IncompatibleVariantsError)
    message = str(e)
    assert q4.name in message and other.name in message
    assert "different architectures" in message and "num_layers 2 vs 4" in message
    assert not out.exists()  # refused before anything was measured


def test_a_missing_checkpoint_still_gets_the_others_measured(
    tiny_checkpoint, short_speech: Path, tmp_path: Path
) -> None:
    bf16 = tiny_checkpoint("bf16")
    missing = tmp_path / "not-downloaded"
    out = tmp_path / "bench"
    args = ("--checkpoint", str(missing), "--checkpoint", str(bf16))
    result = bench(*args, out=out, speech=short_speech, steps=FEW_STEPS, warmup=FEW_WARMUP)
    assert result.exit_code == 1
    e = result.exception
    assert isinstance(e, BenchError)
    assert "1 of 2 variants not measured" in str(e) and str(missing) in str(e)
    assert str(out) in str(e)
    assert bf16.name in result.output  # the measured one is still shown

    data = json.loads((out / "report.json").read_text())
    assert data["complete"] is False
    assert [v["label"] for v in data["variants"]] == [bf16.name]
    assert data["reference"] == bf16.name
    [error] = data["errors"]
    assert error["variant"] == "not-downloaded" and error["stage"] == "check"
    assert "no such file or folder" in error["message"]
    md = (out / "report.md").read_text()
    assert "Partial report" in md and "## Errors" in md and "not-downloaded" in md
    assert png_size(out / "latency.png")[0] > 0


@pytest.mark.parametrize("failure", ["load error", "ctrl-c"])
def test_a_variant_failing_while_measured_keeps_the_others(
    tiny_checkpoint,
    short_speech: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    """A load error in the first variant measured (the would-be reference): the next one
    becomes the reference. Ctrl-C in the second: the first one's results are kept."""
    bf16, q4 = tiny_checkpoint("bf16"), tiny_checkpoint("q4")
    real = bench_runner.measure_variant
    failing = bf16.name if failure == "load error" else q4.name

    def measure(variant, *args, **kwargs):
        if variant.label == failing:
            if failure == "ctrl-c":
                raise KeyboardInterrupt
            raise CheckpointError("loading the weights failed: bad data", path=variant.files.model)
        return real(variant, *args, **kwargs)

    monkeypatch.setattr(bench_runner, "measure_variant", measure)
    out = tmp_path / "bench"
    args = ("--checkpoint", str(q4), "--checkpoint", str(bf16))
    result = bench(*args, out=out, speech=short_speech, steps=FEW_STEPS, warmup=FEW_WARMUP)
    data = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    measured = q4.name if failure == "load error" else bf16.name
    assert [v["label"] for v in data["variants"]] == [measured]
    assert data["reference"] == measured and data["complete"] is False
    [error] = data["errors"]
    assert error["variant"] == failing
    if failure == "ctrl-c":
        assert result.exit_code == 130
        assert error["stage"] == "interrupted" and "Partial report** (interrupted)" in md
    else:
        assert result.exit_code == 1 and isinstance(result.exception, BenchError)
        assert error["stage"] == "measure" and "bad data" in error["message"]
        assert data["variants"][0]["fidelity"]["text_agreement_percent"] == 100
    assert png_size(out / "step_times.png")[0] > 0


def test_offline_presets_say_what_is_missing(speech: Path, tmp_path: Path) -> None:
    result = bench(out=tmp_path / "bench", speech=speech)  # default: moshiko q4 and q8
    assert result.exit_code == 1
    message = str(result.exception)
    assert "no variant can be measured" in message
    assert "moshiko-q4" in message and "moshiko-q8" in message
    assert "assistant download" in message
    assert not (tmp_path / "bench").exists()


def test_quant_and_checkpoint_together_is_a_usage_error(tmp_path: Path) -> None:
    result = bench("--quant", "q8", "--checkpoint", "x", out=tmp_path / "bench")
    assert isinstance(result.exception, UsageError)
    assert "one or the other" in str(result.exception)


def test_an_unreadable_input_is_named_before_anything_is_measured(
    tiny_checkpoint, tmp_path: Path
) -> None:
    """Through the real console entry point: one line naming the file, no traceback."""
    bad = tmp_path / "speech.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    out = tmp_path / "bench"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    env.pop("ASSISTANT_DEBUG", None)
    args = ["--checkpoint", str(tiny_checkpoint("q4")), "--input", str(bad), "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "bench", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}: unusable audio file" in result.stderr
    assert not out.exists()


def test_a_missing_input_file_is_an_audio_error(tiny_checkpoint, tmp_path: Path) -> None:
    result = bench(
        "--checkpoint", str(tiny_checkpoint("q4")), out=tmp_path / "b", speech=tmp_path / "no.wav"
    )
    assert result.exit_code == 1
    assert str(tmp_path / "no.wav") in str(result.exception)
    assert "no such audio file" in str(result.exception)


@pytest.mark.slow  # (the module's one whole bench run, ~17 s of CPU)
def test_the_bench_listens_to_each_variant_and_says_random_weights_make_it_meaningless(
    full_run: FullRun,
) -> None:
    assert full_run.exit_code == 0, full_run.output
    output, out = full_run.output, full_run.out
    assert "Listening: speech recognition" in output and "meaningless" in output
    data = full_run.report()
    assert [v["label"] for v in data["variants"]] == full_run.labels
    for v in data["variants"]:
        heard = v["listening"]
        assert heard["meaningful"] is False and heard["heard"]  # the random recogniser babbles
        if heard["said"]:
            assert heard["word_error_rate"] >= 0
        else:
            assert heard["word_error_rate"] is None
    md = (out / "report.md").read_text()
    assert "## Listening" in md and "](listening.png)" in md
    width, height = png_size(out / "listening.png")
    assert width >= 600 and height >= 300


def test_without_a_speech_model_the_bench_says_why_it_did_not_listen(
    tiny_checkpoint, short_speech: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench"
    args = ("--checkpoint", str(tiny_checkpoint("bf16")))
    result = bench(*args, out=out, speech=short_speech, steps=FEW_STEPS, warmup=FEW_WARMUP)
    assert result.exit_code == 0, result.output
    note = json.loads((out / "report.json").read_text())["listening_note"]
    assert note.startswith("not measured:") and "stt" in note


def test_word_error_rate() -> None:
    from assistant.bench.listening import word_error_rate, words

    assert word_error_rate(words("Hello, there!"), words("hello there")) == 0
    assert (
        word_error_rate(words("a b c d"), words("a x c")) == 0.5
    )  # one substitution, one deletion
    assert word_error_rate(words("a b"), words("a b c d")) == 1.0  # two insertions
    assert word_error_rate([], words("babble")) is None
