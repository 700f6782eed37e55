"""The command line as a user meets it: tables, JSON, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.checkpoint.config import MOSHIKO_V0_1, TINY
from assistant.checkpoint.layout import Q4, Quantization, TensorSpec, expected_tensors
from assistant.cli import _register, app
from tests.support.helpers import save_tiny_model, tiny_folder, write_sparse

_register()
runner = CliRunner()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh process, as a user runs it."""
    full_env = os.environ | {"HF_HUB_OFFLINE": "1", "COLUMNS": "100"} | (env or {})
    full_env.pop("ASSISTANT_DEBUG", None) if "ASSISTANT_DEBUG" not in (env or {}) else None
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


@pytest.fixture
def tiny_q4(tmp_path: Path) -> Path:
    return tiny_folder(tmp_path)


def test_info_table(tiny_q4: Path) -> None:
    result = runner.invoke(app, ["info", str(tiny_q4)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "4-bit, group size 32 (from tensor shapes)" in result.output
    assert "Valid: every tensor matches the architecture." in result.output
    assert "dim 256, 2 layers" in result.output


def test_info_json(tiny_q4: Path) -> None:
    result = runner.invoke(app, ["info", str(tiny_q4), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    model = data["model"]
    assert (model["bits"], model["group_size"], model["quantization"]) == (4, 32, "q4")
    assert model["tensor_count"] == 267 and model["valid"] is True
    assert model["bits_per_weight"] == pytest.approx(5.0, abs=0.01)
    assert model["architecture"]["dim"] == 256
    assert data["memory"]["fits"] is True


def test_info_lists_mismatches_and_fails(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "model.q4.safetensors", Q4)  # no config: moshiko assumed
    result = run_cli("info", str(tmp_path))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and result.stdout == "", result.stderr
    assert lines[0].startswith(f"error: {model}: weights do not match the architecture: ")
    assert "`assistant info --json` lists every mismatch" in lines[0]
    data = json.loads(runner.invoke(app, ["info", str(tmp_path), "--json"]).output)
    assert len(data["model"]["problems"]) > 100


def test_load_reports_the_real_load_time(tiny_q4: Path) -> None:
    result = runner.invoke(app, ["load", str(tiny_q4)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Loaded" in result.output and "5.00 bits/weight" in result.output


def test_load_then_stream_frames(tiny_q4: Path) -> None:
    result = runner.invoke(app, ["load", str(tiny_q4), "--steps", "5"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "5 steps: p50" in result.output


def _unsupported_bits(tmp_path: Path) -> Path:
    specs = expected_tensors(TINY, Q4)
    p = "transformer.layers.0.self_attn.in_proj"
    specs[f"{p}.weight"] = TensorSpec(f"{p}.weight", (768, 56), "U32")
    specs[f"{p}.scales"] = TensorSpec(f"{p}.scales", (768, 8), "BF16")
    return write_sparse(tmp_path / "model.safetensors", specs)


def _truncated(tmp_path: Path) -> Path:
    path = save_tiny_model(tmp_path / "model.q4.safetensors", Q4)
    path.write_bytes(path.read_bytes()[:-1000])
    return path


def _misnamed(tmp_path: Path) -> Path:
    TINY.write(tmp_path / "config.json")
    return save_tiny_model(tmp_path / "model.q8.safetensors", Q4)


def _mismatch(tmp_path: Path) -> Path:
    return save_tiny_model(tmp_path / "model.q4.safetensors", Q4)


def _corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "model.q4.safetensors"
    path.write_bytes(os.urandom(4096))
    return path


def _empty_folder(tmp_path: Path) -> Path:
    (tmp_path / "README.txt").write_text("nothing here")
    return tmp_path


BAD_INPUTS = {
    "missing file": (lambda tmp: tmp / "absent.safetensors", "no such file"),
    "truncated": (_truncated, "truncated"),
    "corrupt": (_corrupt, "not a safetensors file"),
    "q4 named q8": (_misnamed, "file name says 8-bit but the tensors are q4"),
    "weights vs config": (_mismatch, "weights do not match the architecture"),
    "unsupported bits": (_unsupported_bits, "7-bit; MLX supports"),
    "no model in folder": (_empty_folder, "no Moshi model file here"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_non_zero(tmp_path: Path, case: str) -> None:
    make, fragment = BAD_INPUTS[case]
    target = make(tmp_path)
    result = run_cli("load", str(target))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert target.name in lines[0]


def test_version_is_the_one_in_pyproject() -> None:
    import re

    import assistant

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    found = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert found and assistant.__version__ == found[1]
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"assistant {found[1]}\n"


def test_offline_preset_names_missing_files() -> None:
    result = run_cli("info", "moshika-q8")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "model.q8.safetensors" in result.stderr and "assistant download" in result.stderr


def test_debug_variable_shows_the_traceback(tmp_path: Path) -> None:
    result = run_cli("load", str(tmp_path / "absent"), env={"ASSISTANT_DEBUG": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "CheckpointError" in result.stderr


def test_unknown_quant_is_a_usage_error() -> None:
    result = run_cli("download", "--quant", "q5")
    assert result.returncode == 2
    assert "unknown quantization 'q5'" in result.stderr


def test_full_size_info_from_a_sparse_file(tmp_path: Path) -> None:
    path = write_sparse(
        tmp_path / "model.q8.safetensors", expected_tensors(MOSHIKO_V0_1, Quantization(8, 64))
    )
    result = runner.invoke(app, ["info", str(path), "--json"])
    model = json.loads(result.output)["model"]
    assert (model["bits"], model["group_size"], model["tensor_count"]) == (8, 64, 1247)
    assert model["valid"] is True and model["bits_per_weight"] == pytest.approx(8.5, abs=0.01)


# --- command-line values, checked before anything starts -------------------------------------


def _fifo(tmp_path: Path) -> list[str]:
    path = tmp_path / "speech.wav"
    os.mkfifo(path)
    return ["--input", str(path)]


def _not_audio(tmp_path: Path) -> list[str]:
    path = tmp_path / "speech.wav"
    path.write_bytes(os.urandom(2048))
    return ["--input", str(path)]


SPEECH = str(Path(__file__).resolve().parents[1] / "assistant" / "data" / "hello.wav")
BAD_VALUES = {
    "negative delay": (["--max-delay-ms", "-5"], 2, "'--max-delay-ms': must be between 160"),
    "nan delay": (["--max-delay-ms", "nan"], 2, "'--max-delay-ms': must be between 160"),
    "inf delay": (["--max-delay-ms", "inf"], 2, "'--max-delay-ms': must be between 160"),
    "text delay": (["--max-delay-ms", "soon"], 2, "Invalid value for '--max-delay-ms'"),
    "negative duration": (["--duration", "-1"], 2, "'--duration': must be above 0"),
    "nan duration": (["--duration", "nan"], 2, "'--duration': must be above 0"),
    "zero duration": (["--duration", "0"], 2, "'--duration': must be above 0 and at most 86,400"),
    "nan temperature": (["--text-temperature", "nan"], 2, "'--text-temperature': must be between"),
    "inf temperature": (["--audio-temperature", "inf"], 2, "'--audio-temperature': must be betwe"),
    "negative top-k": (["--audio-top-k", "-3"], 2, "'--audio-top-k': must be between 0 and"),
    "huge top-k": (["--text-top-k", "9" * 20], 2, "'--text-top-k': must be between 0 and 1,000"),
    "negative seed": (["--seed", "-1"], 2, "'--seed': must be between 0 and 18,446,744,073"),
    "output without input": (["--output", "x.wav"], 2, "--output needs --input"),
    "realtime without input": (["--realtime"], 2, "--realtime needs --input"),
    "missing input": (["--input", "nowhere.wav"], 1, "nowhere.wav: no such audio file"),
    "fifo input": (_fifo, 1, "speech.wav: is a named pipe (FIFO), not a regular audio file"),
    "not audio": (_not_audio, 1, "speech.wav: unusable audio file: not a WAV, FLAC, Ogg"),
    "output is input": (
        ["--input", SPEECH, "--output", str(Path(SPEECH).parent / ".." / "data" / "hello.wav")],
        2,
        "is the same file as --input",
    ),
    "output in no folder": (
        ["--input", SPEECH, "--output", "/nonexistent/out.wav"],
        1,
        "/nonexistent: cannot write the output here: no such folder",
    ),
    "output is a folder": (
        ["--input", SPEECH, "--output", "/tmp"],
        1,
        "/tmp: is a folder; the output must be a file",
    ),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_chat_values_are_checked_before_anything_starts(tmp_path: Path, case: str) -> None:
    spec, code, fragment = BAD_VALUES[case]
    args = spec(tmp_path) if callable(spec) else spec
    assert isinstance(args, list)
    # A checkpoint that does not exist: had anything started before the check, that would be
    # the error instead.
    result = run_cli("chat", "--checkpoint", str(tmp_path / "absent"), *args)
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "absent" not in lines[0] and result.stdout == ""


@pytest.mark.parametrize(
    ("args", "spawned"), [(["chat", "--checkpoint", "/nonexistent"], 1), (["chat", "--help"], 0)]
)
def test_chat_starts_its_codec_fork_server_first_and_ends_it_if_not_used(
    monkeypatch: pytest.MonkeyPatch, args: list[str], spawned: int
) -> None:
    """`chat` starts its codec's fork server before anything else (it imports while the
    command line is read and the checkpoint checked); a chat that ends before its codec opens
    leaves it not running. `--help` starts none."""
    import psutil

    from assistant import cli
    from assistant.codec import forks as codec_forks

    started: list[codec_forks.ForkServer] = []
    real_server = codec_forks.ForkServer

    def server() -> codec_forks.ForkServer:
        started.append(real_server())
        return started[-1]

    monkeypatch.setattr(codec_forks, "ForkServer", server)
    monkeypatch.setattr(sys, "argv", ["assistant", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == (1 if spawned else 0)
    assert len(started) == spawned
    assert codec_forks._spare is None
    for proc in (s._proc for s in started):
        assert proc.poll() is not None or psutil.Process(proc.pid).status() == "zombie"
