"""Speech to text: the STT checkpoint layout, its validation, the transcriber against moshi_mlx's
own reference code, word timings, stopping, and finding a checkpoint."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from assistant.checkpoint.stt_config import STT_1B_EN_FR, STT_TINY, SttConfig
from assistant.checkpoint.stt_hub import STT_PRESET, download_stt
from assistant.checkpoint.stt_layout import stt_tensors
from assistant.checkpoint.stt_validate import inspect_stt, require_valid_stt, stt_files
from assistant.checkpoint.synthetic.stt import make_stt_checkpoint, stt_model_size
from assistant.errors import (
    AssistantError,
    CheckpointError,
    ConfigError,
    MissingFilesError,
    TokenizerError,
    UsageError,
)
from assistant.frames import FRAME_SAMPLES, SAMPLE_RATE
from assistant.history import recognizer
from assistant.stt import SpeechToText, TranscriptionStopped, Word, find_stt_checkpoint
from assistant.stt.words import words_from_tokens
from tests.support.helpers import write_sparse


@pytest.fixture(scope="module")
def stt_folder(tmp_path_factory: pytest.TempPathFactory, synthetic_cache: Path) -> Path:
    """A tiny synthetic STT checkpoint (read-only: copy it before changing anything)."""
    folder = tmp_path_factory.mktemp("stt") / "tiny"
    make_stt_checkpoint(folder, config_name="tiny", cache_dir=synthetic_cache)
    return folder


@pytest.fixture(scope="module")
def stt(stt_folder: Path) -> SpeechToText:
    return SpeechToText.load(stt_folder)


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts and tones: input that moves Mimi's codes around, deterministically."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    envelope = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(np.float32)
    tone = 0.3 * np.sin(2 * np.pi * (180 + 60 * np.sin(2 * np.pi * 0.7 * t)) * t)
    return ((tone + 0.05 * rng.standard_normal(n)) * envelope).astype(np.float32)


def _copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest, copy_function=os.link)  # files are replaced, never edited
    return dest


def _replace(path: Path, data: bytes | str) -> None:
    path.unlink()
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)


# --- the published layout --------------------------------------------------------------------


def _moshi_mlx_tensors(config: SttConfig) -> dict[str, tuple[tuple[int, ...], mx.Dtype]]:
    from moshi_mlx import models

    model = models.Lm(models.LmConfig.from_config_dict(config.to_dict()))
    model.set_dtype(mx.bfloat16)
    return {n: (tuple(p.shape), p.dtype) for n, p in tree_flatten(model.parameters())}


@pytest.mark.parametrize(
    "config",
    [STT_1B_EN_FR, STT_TINY, SttConfig(**{**STT_TINY.__dict__, "extra_heads_num_heads": 4})],
    ids=["stt-1b-en_fr", "tiny", "tiny-with-vad-heads"],
)
def test_layout_is_what_moshi_mlx_builds_from_the_config(config: SttConfig) -> None:
    ours = {n: (s.shape, mx.bfloat16) for n, s in stt_tensors(config).items()}
    assert ours == _moshi_mlx_tensors(config)


def test_published_sizes() -> None:
    """~1B parameters, a ~1.98 GB bf16 file, as the model card and the hub say."""
    params = sum(int(np.prod(s.shape)) for s in stt_tensors(STT_1B_EN_FR).values())
    assert 0.98e9 < params < 1.0e9
    assert STT_PRESET.model_size == stt_model_size(STT_1B_EN_FR)
    assert 1.97e9 < STT_PRESET.model_size < 1.99e9


def test_config_round_trips_and_reads_like_moshi_mlx(tmp_path: Path) -> None:
    from moshi_mlx import models

    path = tmp_path / "config.json"
    STT_1B_EN_FR.write(path)
    assert SttConfig.from_file(path) == STT_1B_EN_FR
    cfg = models.LmConfig.from_config_dict(json.loads(path.read_text()))
    assert (cfg.generated_codebooks, cfg.other_codebooks) == (0, 32)
    assert (cfg.text_out_vocab_size, cfg.audio_vocab_size) == (8000, 2049)
    assert cfg.transformer.context == 750


def test_full_size_layout_validates(tmp_path: Path, stt_folder: Path) -> None:
    """The published architecture's folder, its model a sparse file with the exact header."""
    folder = tmp_path / "full"
    folder.mkdir()
    STT_1B_EN_FR.write(folder / "config.json")
    write_sparse(folder / "model.safetensors", stt_tensors(STT_1B_EN_FR))
    for name in (STT_1B_EN_FR.mimi_name, STT_1B_EN_FR.tokenizer_name):
        os.link(stt_folder / name, folder / name)
    report = inspect_stt(stt_files(folder))
    assert report.problems == []
    assert report.config == STT_1B_EN_FR
    assert report.text_tokenizer.vocab_size == 8000
    assert report.codec.codebooks == 32


@pytest.mark.slow
def test_full_size_synthetic_checkpoint_is_written_in_the_published_layout(
    tmp_path: Path, synthetic_cache: Path
) -> None:
    from tests.support.helpers import require_free_disk

    require_free_disk(tmp_path, stt_model_size(STT_1B_EN_FR))
    made = make_stt_checkpoint(
        tmp_path / "full", config_name="stt-1b-en_fr", cache_dir=synthetic_cache
    )
    report = inspect_stt(stt_files(made.folder))
    assert report.problems == []
    assert (made.folder / "model.safetensors").stat().st_size == STT_PRESET.model_size


# --- validation: one line naming the file ----------------------------------------------------


def _one_line(e: AssistantError, name: str) -> None:
    text = str(e)
    assert "\n" not in text and name in text, text


def test_missing_file_is_one_line(stt_folder: Path, tmp_path: Path) -> None:
    folder = _copy(stt_folder, tmp_path / "c")
    (folder / STT_TINY.mimi_name).unlink()
    with pytest.raises(MissingFilesError) as e:
        SpeechToText.load(folder)
    _one_line(e.value, STT_TINY.mimi_name)


def test_no_config_is_one_line(stt_folder: Path, tmp_path: Path) -> None:
    folder = _copy(stt_folder, tmp_path / "c")
    (folder / "config.json").unlink()
    with pytest.raises(MissingFilesError) as e:
        SpeechToText.load(folder)
    _one_line(e.value, "config.json")


def test_wrong_shape_is_one_line(stt_folder: Path, tmp_path: Path) -> None:
    folder = _copy(stt_folder, tmp_path / "c")
    specs = dict(stt_tensors(STT_TINY))
    name = "transformer.layers.1.gating.linear_out.weight"
    specs[name] = type(specs[name])(name, (64, 100), "BF16")
    (folder / "model.safetensors").unlink()
    write_sparse(folder / "model.safetensors", specs)
    with pytest.raises(CheckpointError) as e:
        SpeechToText.load(folder)
    _one_line(e.value, "model.safetensors")
    assert "weights do not match config.json" in str(e.value)
    assert f"{name}: expected BF16[64, 176], found BF16[64, 100]" in str(e.value)


def test_moshi_model_is_refused(stt_folder: Path, tmp_path: Path, tiny_checkpoint) -> None:
    folder = _copy(stt_folder, tmp_path / "c")
    _replace(
        folder / "model.safetensors", (tiny_checkpoint("bf16") / "model.safetensors").read_bytes()
    )
    with pytest.raises(CheckpointError) as e:
        SpeechToText.load(folder)
    _one_line(e.value, "model.safetensors")
    assert "speech-to-speech" in str(e.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("stt_config"), "missing keys: stt_config"),
        (lambda d: d.update(dep_q=8), "dep_q is 8"),
        (lambda d: d.update(num_layers="2"), "'num_layers' must be an integer"),
        (lambda d: d.update(num_layers=10**9), "'num_layers' must be 1..256"),
        (lambda d: d.update(mimi_name="../../etc/passwd"), "must name a file in the checkpoint"),
        (lambda d: d.update(model_type="lm"), "not a speech-to-text model"),
        (lambda d: d.update(hidden_scale=3.0), "MLP width moshi_mlx does not build"),
        (lambda d: d["stt_config"].update(audio_delay_seconds=-1), "audio_delay_seconds"),
        (lambda d: d.update(delays=[0] * 32), "'delays' must be 33 zeros"),
    ],
)
def test_bad_config_is_one_line(stt_folder: Path, tmp_path: Path, change, expected: str) -> None:
    folder = _copy(stt_folder, tmp_path / "c")
    data = json.loads((folder / "config.json").read_text())
    change(data)
    _replace(folder / "config.json", json.dumps(data))
    with pytest.raises(ConfigError) as e:
        SpeechToText.load(folder)
    _one_line(e.value, "config.json")
    assert expected in str(e.value)


def test_non_finite_config_value_is_one_line(stt_folder: Path, tmp_path: Path) -> None:
    folder = _copy(stt_folder, tmp_path / "c")
    text = (
        (folder / "config.json").read_text().replace('"hidden_scale": 4.125', '"hidden_scale": NaN')
    )
    _replace(folder / "config.json", text)
    with pytest.raises(ConfigError) as e:
        SpeechToText.load(folder)
    _one_line(e.value, "config.json")


def test_tokenizer_of_another_size_is_one_line(
    stt_folder: Path, tmp_path: Path, tiny_checkpoint
) -> None:
    folder = _copy(stt_folder, tmp_path / "c")
    moshi_tokenizer = tiny_checkpoint("bf16") / "tokenizer_spm_32k_3.model"
    _replace(folder / STT_TINY.tokenizer_name, moshi_tokenizer.read_bytes())
    with pytest.raises(TokenizerError) as e:
        require_valid_stt(inspect_stt(stt_files(folder)))
    _one_line(e.value, STT_TINY.tokenizer_name)
    assert "but the model's text vocabulary is 8000" in str(e.value)


def test_too_little_memory_is_refused_before_loading(
    stt_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.errors import InsufficientMemoryError
    from assistant.stt import loader
    from assistant.voice.memory import GiB, MachineMemory

    monkeypatch.setattr(loader, "machine_memory", lambda: MachineMemory(ram=GiB))
    with pytest.raises(InsufficientMemoryError) as e:
        SpeechToText.load(stt_folder)
    assert "\n" not in str(e.value) and "speech to text" in str(e.value)
    monkeypatch.setattr(loader, "build_stt_model", lambda _r: pytest.fail("built anyway"))
    with pytest.raises(InsufficientMemoryError):
        SpeechToText.load(stt_folder)


def test_encoder_rolls_over_to_a_warmed_up_instance(stt_folder: Path) -> None:
    from assistant.stt.encoder import FrameEncoder

    audio = _speechlike(1.2)
    encoder = FrameEncoder(stt_folder / STT_TINY.mimi_name, 32, rollover_after=6, warmup_frames=2)
    codes = [encoder.encode(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) for i in range(14)]
    # Frames 0-5 by the first instance; the second re-encodes 4-5, then serves 6-9; the third 10-13.
    assert encoder.rollovers == 2
    assert all(
        c.shape == (32,) and c.dtype == np.int32 and 0 <= c.min() <= c.max() < 2048 for c in codes
    )
    # Several frames per call (a whole recording's way), across the same roll-overs: the same.
    blocks = FrameEncoder(stt_folder / STT_TINY.mimi_name, 32, rollover_after=6, warmup_frames=2)
    frames = audio[: 14 * FRAME_SAMPLES].reshape(14, FRAME_SAMPLES)
    together = np.concatenate([blocks.encode_frames(frames[:3]), blocks.encode_frames(frames[3:])])
    assert blocks.rollovers == 2 and together.dtype == np.int32
    assert np.array_equal(together, np.stack(codes))


def test_truncated_model_is_one_line(stt_folder: Path, tmp_path: Path) -> None:
    folder = _copy(stt_folder, tmp_path / "c")
    data = (folder / "model.safetensors").read_bytes()
    _replace(folder / "model.safetensors", data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        SpeechToText.load(folder)
    _one_line(e.value, "model.safetensors")


# --- the transcriber -------------------------------------------------------------------------


def _reference_tokens(folder: Path, padded: np.ndarray) -> list[int]:
    """moshi_mlx's own path, as its run_inference runs an STT checkpoint (greedy)."""
    import rustymimi
    from moshi_mlx import models, utils

    raw = json.loads((folder / "config.json").read_text())
    cfg = models.LmConfig.from_config_dict(raw)
    model = models.Lm(cfg)
    model.set_dtype(mx.bfloat16)
    model.load_weights(str(folder / "model.safetensors"), strict=True)
    model.warmup()
    codec = rustymimi.Tokenizer(str(folder / raw["mimi_name"]), num_codebooks=32)
    steps = len(padded) // FRAME_SAMPLES
    gen = models.LmGen(
        model=model,
        max_steps=steps,
        text_sampler=utils.Sampler(top_k=25, temp=0),
        audio_sampler=utils.Sampler(top_k=250, temp=0),
        check=False,
    )
    tokens = []
    for i in range(steps):
        pcm = padded[None, None, i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
        codes = mx.array(codec.encode_step(pcm)).transpose(0, 2, 1)[:, :, : cfg.other_codebooks]
        tokens.append(gen.step(codes[0])[0].item())
    return tokens


def test_greedy_tokens_equal_moshi_mlx_reference(stt: SpeechToText, stt_folder: Path) -> None:
    audio = _speechlike(2.0, seed=1)
    ours = stt.text_tokens(audio)
    # The same frames the transcriber fed: no silence prefix (0 s), the audio, then the delay
    # plus 1 s of silence (rounded up to whole frames).
    flush = np.zeros(stt.flush_frames * FRAME_SAMPLES, dtype=np.float32)
    assert stt.prefix_frames == 0 and len(audio) % FRAME_SAMPLES == 0
    reference = _reference_tokens(stt_folder, np.concatenate([audio, flush]))
    assert len(ours) == len(reference) == 25 + stt.flush_frames
    assert ours == reference
    assert len(set(ours)) > 1  # the input moved the model: the comparison means something


@dataclass(frozen=True)
class Transcribed:
    audio: np.ndarray
    words: list[Word]
    progress: list[tuple[float, float]]  # (seconds done, seconds in all) at each call


@pytest.fixture(scope="module")
def transcribed(stt: SpeechToText) -> Transcribed:
    """One `transcribe` call that several tests read: input not a whole number of frames."""
    audio = _speechlike(1.5, seed=2)[:-700]
    seen: list[tuple[float, float]] = []
    words = stt.transcribe(audio, progress=lambda done, total: seen.append((done, total)))
    return Transcribed(audio, words, seen)


def test_transcribe_gives_ordered_words_within_the_audio(
    stt: SpeechToText, transcribed: Transcribed
) -> None:
    audio, words, seen = transcribed.audio, transcribed.words, transcribed.progress
    total = len(audio) / SAMPLE_RATE
    assert words, "random weights babble: some words come out"
    assert all(isinstance(w, Word) and w.text and " " not in w.text for w in words)
    for w in words:
        assert 0.0 <= w.start <= w.end <= total
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(words))
    assert seen[-1][0] == pytest.approx(total) and seen[-1][1] == pytest.approx(total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # Reusable: the same input gives the same words (the cache is reset between calls).
    assert stt.transcribe(audio) == words


def test_live_transcription_gives_the_words_of_transcribe(
    stt: SpeechToText, transcribed: Transcribed
) -> None:
    audio, whole = transcribed.audio, transcribed.words
    rng = np.random.default_rng(5)
    live, words, at = stt.live(), [], 0
    while at < len(audio):
        n = int(rng.integers(1, 5000))
        words += live.feed(audio[at : at + n])
        at += n
    during = len(words)
    words += live.finish()
    assert words == whole
    assert 0 < during < len(whole)  # words came out before the end
    with pytest.raises(UsageError, match="finished"):
        live.feed(audio[:10])
    assert stt.transcribe(audio) == whole  # the model was given back, reset


def test_should_stop_stops(stt: SpeechToText) -> None:
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(TranscriptionStopped) as e:
        stt.transcribe(_speechlike(3.0), should_stop=stop)
    assert len(calls) == 6
    assert "stopped after 0.4 of 3.0 s" in str(e.value)


def test_bad_samples_are_refused(stt: SpeechToText) -> None:
    with pytest.raises(UsageError, match="mono"):
        stt.transcribe(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(UsageError, match="NaN"):
        stt.transcribe(np.full(100, np.nan, dtype=np.float32))
    with pytest.raises(UsageError, match="float"):
        stt.transcribe(np.zeros(100, dtype=np.int16))


def test_empty_audio_gives_no_words(stt: SpeechToText) -> None:
    assert stt.transcribe(np.zeros(0, dtype=np.float32)) == []


# --- word timings ----------------------------------------------------------------------------


def test_words_from_tokens_timings() -> None:
    pieces = {10: "\u2581Hel", 11: "lo", 12: "\u2581world", 13: ",", 14: "\u2581x"}
    tokens = [(0, 3), (1, 3), (2, 0), (3, 10), (4, 11), (5, 3), (6, 12), (7, 13), (8, 14), (9, 3)]
    words = words_from_tokens(
        tokens,
        piece=pieces.__getitem__,
        decode=lambda ids: "".join(pieces[i] for i in ids).replace("\u2581", " "),
        silent_ids=frozenset({0, 3}),
        offset_s=0.16,
        duration_s=0.6,
    )
    assert [(w.text, round(w.start, 6), round(w.end, 6)) for w in words] == [
        ("Hello", 0.08, 0.24),  # steps 3-4: 0.24-0.40 s, less 0.16
        ("world,", 0.32, 0.48),  # steps 6-7
        ("x", 0.48, 0.56),  # step 8
    ]


# --- finding a checkpoint --------------------------------------------------------------------


def test_find_a_folder(stt_folder: Path) -> None:
    assert find_stt_checkpoint(str(stt_folder)) == stt_folder


def test_find_the_catalogue_name_when_not_downloaded() -> None:
    for spec in (None, "stt-1b-en_fr", "kyutai/stt-1b-en_fr-mlx"):
        with pytest.raises(MissingFilesError) as e:
            find_stt_checkpoint(spec)
        _one_line(e.value, "kyutai/stt-1b-en_fr-mlx")
        assert "assistant download --stt" in str(e.value)
        assert "assistant make-checkpoint PATH --kind stt" in str(e.value)


def test_find_nothing_there(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as e:
        find_stt_checkpoint(str(tmp_path / "nope"))
    _one_line(e.value, "nope")
    assert "--kind stt" in str(e.value)


def test_find_in_the_hub_cache(stt_folder: Path, isolated_hub: Path) -> None:
    """The cache's layout (models--kyutai--stt-1b-en_fr-mlx/snapshots/REV/...) is found."""
    repo = isolated_hub / "models--kyutai--stt-1b-en_fr-mlx"
    assert not recognizer.available()  # (what each conversation asks as it ends)
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    for name in STT_PRESET.files:
        os.link(stt_folder / name, snapshot / name)
    assert find_stt_checkpoint(None) == snapshot
    assert recognizer.available()
    assert download_stt() == snapshot  # complete: nothing to fetch, even offline


def test_download_offline_says_how(isolated_hub: Path) -> None:
    with pytest.raises(MissingFilesError) as e:
        download_stt()
    _one_line(e.value, "HF_HUB_OFFLINE")
    assert "assistant download --stt" in str(e.value)


# --- the command line ------------------------------------------------------------------------


def test_cli_make_checkpoint_stt_and_download_offline(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from assistant.cli import _register, app

    _register()
    runner = CliRunner()
    result = runner.invoke(app, ["make-checkpoint", str(tmp_path / "s"), "--kind", "stt"])
    assert result.exit_code == 0, result.output
    assert "speech to text" in result.output
    report = inspect_stt(stt_files(tmp_path / "s"))
    assert report.problems == [] and report.config == STT_TINY
    again = runner.invoke(app, ["make-checkpoint", str(tmp_path / "s"), "--kind", "stt"])
    assert again.exit_code == 0 and "already complete" in again.output

    refused = runner.invoke(
        app, ["make-checkpoint", str(tmp_path / "q"), "--kind", "stt", "-q", "q4"]
    )
    assert isinstance(refused.exception, UsageError) and "bf16 only" in str(refused.exception)
    assert not (tmp_path / "q").exists()

    offline = runner.invoke(app, ["download", "--stt"])
    assert isinstance(offline.exception, MissingFilesError)
    assert "kyutai/stt-1b-en_fr-mlx" in str(offline.exception)


def test_attention_window_past_the_context_equals_moshi_mlx(
    stt_folder: Path, tmp_path: Path
) -> None:
    """A model with a 20-step context run for 60 steps attends to the last 20 steps, the current
    one included (PyTorch moshi's window, and voice/kv_cache's). moshi_mlx's own trimming keeps
    one key more (`t + min(context, k_len - t)`), so its reference runs with context 19: the same
    20 keys. Without the cache fix, the rotating cache's layout would differ from step 20 on."""
    from dataclasses import replace

    from moshi_mlx import models, utils

    from assistant.checkpoint.safetensors_writer import write_safetensors
    from assistant.checkpoint.synthetic.lm import LmTensorSource

    config = replace(STT_TINY, context=20)
    folder = _copy(stt_folder, tmp_path / "c")
    _replace(folder / "config.json", json.dumps(config.to_dict()))
    (folder / "model.safetensors").unlink()
    specs = list(stt_tensors(config).values())
    write_safetensors(folder / "model.safetensors", specs, LmTensorSource(None, seed=3))
    stt = SpeechToText.load(folder)

    reference = models.Lm(models.LmConfig.from_config_dict({**config.to_dict(), "context": 19}))
    reference.set_dtype(mx.bfloat16)
    reference.load_weights(str(folder / "model.safetensors"), strict=True)
    gen = models.LmGen(
        model=reference,
        max_steps=60,
        text_sampler=utils.Sampler(temp=0),
        audio_sampler=utils.Sampler(temp=0),
    )
    rng = np.random.default_rng(0)
    text = mx.array([[config.text_card]], dtype=mx.int32)
    codes = [mx.array([[config.card]], dtype=mx.int32)] * config.n_q
    ours, theirs = [], []
    for _ in range(60):
        frame = rng.integers(0, config.card, size=config.n_q).astype(np.int32)
        text = stt._step(text, codes)
        ours.append(int(text.item()))
        codes = [mx.array([[int(c)]], dtype=mx.int32) for c in frame]
        theirs.append(int(gen.step(mx.array(frame)[None])[0].item()))
    assert ours == theirs
    assert len(set(ours[20:])) > 1


def _fake_hub(
    monkeypatch: pytest.MonkeyPatch, hub_dir: Path, source: Path, header_of: Path
) -> list[str]:
    """The hub, played from `source`: downloads land in the cache's snapshot layout, and the
    remote header is `header_of`'s. Returns the names fetched, in order."""
    import huggingface_hub

    from assistant.checkpoint import hub
    from assistant.checkpoint.safetensors_reader import read_header

    repo = hub_dir / "models--kyutai--stt-1b-en_fr-mlx"
    snapshot = repo / "snapshots" / ("b" * 40)
    fetched: list[str] = []

    def download(repo_id: str, name: str) -> str:
        assert repo_id == STT_PRESET.repo_id
        snapshot.mkdir(parents=True, exist_ok=True)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text("b" * 40)
        os.link(source / name, snapshot / name)
        fetched.append(name)
        return str(snapshot / name)

    monkeypatch.setattr(hub, "offline", lambda: False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(hub, "fetch_remote_header", lambda _p: read_header(header_of))
    return fetched


def test_download_fetches_config_then_checks_the_model_header_then_the_rest(
    stt_folder: Path, isolated_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched = _fake_hub(monkeypatch, isolated_hub, stt_folder, stt_folder / "model.safetensors")
    folder = download_stt()
    assert fetched == list(STT_PRESET.files)  # config.json first
    assert find_stt_checkpoint("stt-1b-en_fr") == folder
    assert inspect_stt(stt_files(folder)).problems == []


def test_download_refuses_a_model_that_does_not_match_its_config(
    stt_folder: Path, isolated_hub: Path, monkeypatch: pytest.MonkeyPatch, tiny_checkpoint
) -> None:
    moshi = tiny_checkpoint("bf16") / "model.safetensors"
    fetched = _fake_hub(monkeypatch, isolated_hub, stt_folder, moshi)
    with pytest.raises(CheckpointError) as e:
        download_stt()
    _one_line(e.value, "kyutai/stt-1b-en_fr-mlx/model.safetensors")
    assert "does not match its config.json" in str(e.value)
    assert fetched == ["config.json"]  # nothing large was fetched


def test_a_config_key_we_do_not_know_is_logged_not_refused(
    stt_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The published config.json was never seen here: a key of its own must not stop it."""
    from assistant.checkpoint.stt_config import SttConfig

    data = json.loads((stt_folder / "config.json").read_text()) | {"surprise": 1}
    with caplog.at_level("WARNING"):
        config = SttConfig.from_dict(data, source="config.json")
    assert config.dim == json.loads((stt_folder / "config.json").read_text())["dim"]
    assert "keys not used by the assistant: surprise" in caplog.text
