"""Broken checkpoints, made on purpose from a good one: the corpus every refusal is tested on.

Each case names a fault a user (or an attacker) could hand the assistant: files that are not
files, safetensors headers that lie about their data, weights that are NaN, configs that ask
for absurd sizes, a codec or tokenizer that is not what it claims. `make_broken` links a good
checkpoint folder's files into a new folder (no copy) and then breaks exactly one thing; a
broken file is always written as a new file, so the source is never touched. `run_case`
runs one through the real command line, as a user would, and measures what came back. Used by
`tests/test_broken_checkpoints.py` and `benchmarks/broken_checkpoints.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.checkpoint.catalogue import CONFIG_FILE, MIMI_FILE, TEXT_TOKENIZER_FILE
from assistant.checkpoint.layout import DTYPE_BYTES
from assistant.checkpoint.synthetic.text_tokenizer import text_tokenizer_bytes
from assistant.checkpoint.writing import link_or_copy
from tests.support.warm_cli import WarmStarter, run_assistant

_COPY_CHUNK = 16 << 20
BF16_NAN, BF16_INF, F32_NAN = b"\xc0\x7f", b"\x80\x7f", b"\x00\x00\xc0\x7f"
NORM, SCALES = "transformer.layers.0.norm1.weight", "transformer.layers.0.self_attn.in_proj.scales"
MIMI_WEIGHT = "decoder.model.0.conv.conv.weight"


@dataclass(frozen=True)
class BrokenCase:
    name: str
    fault: str  # one line: what is wrong
    culprit: str  # what the error must name: "model", "mimi", "tokenizer", "config" or "folder"
    command: str  # the cheapest command that must refuse it: "info", "load" or "chat"
    breaks: Callable[[Path], None]  # breaks the linked folder in place


# --- safetensors surgery -------------------------------------------------------------------------


@dataclass
class _Tensor:
    name: str
    dtype: str
    shape: list[int]
    data: tuple[int, int] | bytes  # a byte range of the source file, or new bytes

    @property
    def nbytes(self) -> int:
        return self.data[1] - self.data[0] if isinstance(self.data, tuple) else len(self.data)


def _load(path: Path) -> tuple[list[_Tensor], int]:
    """A good file's tensors in data order, and where its data starts."""
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header: dict[str, Any] = json.loads(f.read(size))
    header.pop("__metadata__", None)
    start = 8 + size
    tensors = [
        _Tensor(
            n,
            e["dtype"],
            list(e["shape"]),
            (start + e["data_offsets"][0], start + e["data_offsets"][1]),
        )
        for n, e in header.items()
    ]
    return sorted(tensors, key=lambda t: t.data if isinstance(t.data, tuple) else (0, 0)), start


def _rewrite(
    path: Path,
    edit: Callable[[list[_Tensor]], list[_Tensor]] = lambda ts: ts,
    *,
    header: Callable[[dict[str, Any]], dict[str, Any]] = lambda h: h,
    raw: Callable[[bytes], bytes] = lambda b: b,
    tail: bytes = b"",
    keep: int | None = None,
) -> None:
    """Rewrite `path` (a new file replaces it) with its tensors edited, then its header dict,
    then its header bytes; `tail` is appended and `keep` cuts the file to that many bytes."""
    tensors = edit(_load(path)[0])
    entries: dict[str, Any] = {}
    offset = 0
    for t in tensors:
        entries[t.name] = {
            "dtype": t.dtype,
            "shape": t.shape,
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    text = raw(json.dumps(header(entries), separators=(",", ":")).encode())
    tmp = path.with_name(path.name + ".broken")
    with path.open("rb") as src, tmp.open("wb") as out:
        out.write(len(text).to_bytes(8, "little") + text)
        for t in tensors:
            if isinstance(t.data, bytes):
                out.write(t.data)
                continue
            src.seek(t.data[0])
            left = t.nbytes
            while left:
                chunk = src.read(min(left, _COPY_CHUNK))
                out.write(chunk)
                left -= len(chunk)
        out.write(tail)
        if keep is not None:
            out.truncate(keep)
    os.replace(tmp, path)


def _fill(name: str, pattern: bytes) -> Callable[[list[_Tensor]], list[_Tensor]]:
    """Every value of tensor `name` set to `pattern` (NaN, infinity ...)."""

    def edit(tensors: list[_Tensor]) -> list[_Tensor]:
        for t in tensors:
            if t.name == name or (name == "*" and t.dtype in ("BF16", "F16", "F32")):
                t.data = pattern * (t.nbytes // len(pattern))
        return tensors

    return edit


def _relabel(name: str, dtype: str) -> Callable[[list[_Tensor]], list[_Tensor]]:
    def edit(tensors: list[_Tensor]) -> list[_Tensor]:
        for t in tensors:
            if t.name == name:
                assert DTYPE_BYTES[t.dtype] == DTYPE_BYTES[dtype]  # same bytes, another meaning
                t.dtype = dtype
        return tensors

    return edit


def _reshape(
    name: str, shape: Callable[[list[int]], list[int]]
) -> Callable[[list[_Tensor]], list[_Tensor]]:
    def edit(tensors: list[_Tensor]) -> list[_Tensor]:
        for t in tensors:
            if t.name == name:
                t.shape = shape(t.shape)
        return tensors

    return edit


def _drop(keep: Callable[[str], bool]) -> Callable[[list[_Tensor]], list[_Tensor]]:
    return lambda tensors: [t for t in tensors if keep(t.name)]


def _extra(tensors: list[_Tensor]) -> list[_Tensor]:
    return [*tensors, _Tensor("extra.weight", "F32", [4], bytes(16))]


def _shift(tensor_index: int, by: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Header offsets from the `tensor_index`-th tensor (data order) on, moved by `by` bytes."""

    def edit(h: dict[str, Any]) -> dict[str, Any]:
        for e in list(h.values())[tensor_index:]:
            e["data_offsets"] = [e["data_offsets"][0] + by, e["data_offsets"][1] + by]
        return h

    return edit


def _overlap(h: dict[str, Any]) -> dict[str, Any]:
    e = list(h.values())[1]
    e["data_offsets"] = [e["data_offsets"][0] - 2, e["data_offsets"][1] - 2]
    return h


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda h: {key: value, **h}


def _duplicate_first(text: bytes) -> bytes:
    first = next(iter(json.loads(text).items()))
    return text[:-1] + b"," + json.dumps(dict([first]), separators=(",", ":")).encode()[1:]


def _zero_data(path: Path) -> None:
    """The same header, and zeros where the data should be (a sparse file: no disk used)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        header = f.read(int.from_bytes(prefix, "little"))
    path.unlink()
    with path.open("wb") as f:
        f.write(prefix + header)
        f.truncate(size)


def _many_tensors(path: Path) -> None:
    entry = b'{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'
    names = b",".join(b'"t%d":%s' % (i, entry) for i in range(150_000))
    header = b"{" + names + b"}"
    _bytes(len(header).to_bytes(8, "little") + header)(path)


def _claim_length(path: Path) -> None:
    """The 8-byte header length made larger than the whole file."""
    tmp = path.with_name(path.name + ".broken")
    shutil.copyfile(path, tmp)
    with tmp.open("r+b") as f:
        f.write((path.stat().st_size + 100).to_bytes(8, "little"))
    os.replace(tmp, path)


# --- other files ---------------------------------------------------------------------------------


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _bytes(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.unlink()
        path.write_bytes(data)

    return write


def _cut(fraction: float) -> Callable[[Path], None]:
    def cut(path: Path) -> None:
        tmp = path.with_name(path.name + ".broken")
        with path.open("rb") as src, tmp.open("wb") as out:
            shutil.copyfileobj(src, out)
            out.truncate(int(path.stat().st_size * fraction))
        os.replace(tmp, path)

    return cut


def _config(change: Callable[[str], str]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        text = change(path.read_text())
        path.unlink()
        path.write_text(text)

    return edit


def _set_config(key: str, value: str) -> Callable[[Path], None]:
    def change(text: str) -> str:
        data = json.loads(text)
        data[key] = "@@"
        return json.dumps(data, indent=2).replace('"@@"', value)

    return _config(change)


# --- the corpus ----------------------------------------------------------------------------------


def model_file(folder: Path) -> Path:
    """The model file of a folder made by `make_checkpoint` (model.q4.safetensors ...)."""
    return next(p for p in sorted(folder.glob("model*.safetensors")))


_Fix = Callable[[Path], None]


def _on(file: str, fn: Callable[[Path], None]) -> _Fix:
    """Apply `fn` to one file of the folder: "model", "mimi", "tokenizer" or "config"."""

    def breaks(folder: Path) -> None:
        fn(culprit_path(folder, file))

    return breaks


def culprit_path(folder: Path, culprit: str) -> Path:
    if culprit == "model":
        return model_file(folder)
    if culprit == "folder":
        return folder
    return (
        folder
        / {"mimi": MIMI_FILE, "tokenizer": TEXT_TOKENIZER_FILE, "config": CONFIG_FILE}[culprit]
    )


def _case(
    name: str, fault: str, culprit: str, command: str, fn: Callable[[Path], None]
) -> BrokenCase:
    return BrokenCase(name, fault, culprit, command, _on(culprit, fn))


def _folder_case(name: str, fault: str, command: str, fn: _Fix) -> BrokenCase:
    return BrokenCase(name, fault, "folder", command, fn)


def _no_model(folder: Path) -> None:
    model_file(folder).unlink()


def _second_model(folder: Path) -> None:
    link_or_copy(model_file(folder), folder / "model.q8.safetensors")


def _renamed_q8(folder: Path) -> None:
    m = model_file(folder)
    m.rename(m.with_name("model.q8.safetensors"))


def _link_to(target: str) -> Callable[[Path], None]:
    def link(path: Path) -> None:
        path.unlink()
        path.symlink_to(target)

    return link


def _make_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _codebooks_below(n: int) -> Callable[[str], bool]:
    def keep(name: str) -> bool:
        prefix = "quantizer.rvq_rest.vq.layers."
        return not name.startswith(prefix) or int(name[len(prefix) :].split(".")[0]) < n - 1

    return keep


def broken_cases() -> list[BrokenCase]:
    """Every kind of broken checkpoint, each refused by the command named in it."""
    deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    m, x, t, c = "model", "mimi", "tokenizer", "config"
    return [
        # files that are not files
        _case("model fifo", "the model file is a named pipe", m, "info", _fifo),
        _case("mimi fifo", "the Mimi file is a named pipe", x, "info", _fifo),
        _case("tokenizer fifo", "the text tokenizer is a named pipe", t, "info", _fifo),
        _case("config fifo", "config.json is a named pipe", c, "info", _fifo),
        _case(
            "model /dev/zero", "the model file links to /dev/zero", m, "info", _link_to("/dev/zero")
        ),
        _case(
            "mimi /dev/zero", "the Mimi file links to /dev/zero", x, "info", _link_to("/dev/zero")
        ),
        _case("model broken link", "the model file links nowhere", m, "info", _link_to("gone")),
        _case("model folder", "the model file is a folder", m, "info", _make_folder),
        _case(
            "model link loop",
            "the model file links to itself",
            m,
            "info",
            _link_to("model.q4.safetensors"),
        ),
        _case("mimi folder", "the Mimi file is a folder", x, "info", _make_folder),
        _case("tokenizer folder", "the text tokenizer is a folder", t, "info", _make_folder),
        _case("config folder", "config.json is a folder", c, "info", _make_folder),
        # safetensors structure (the model file)
        _case("model empty", "the model file is empty", m, "info", _bytes(b"")),
        _case("model noise", "the model file is random bytes", m, "info", _bytes(os.urandom(4096))),
        _case(
            "model truncated",
            "the model file lost its last 1000 bytes",
            m,
            "info",
            lambda p: _rewrite(p, keep=p.stat().st_size - 1000),
        ),
        _case("header length", "the header length points past the end", m, "info", _claim_length),
        _case(
            "header not json",
            "the header is not JSON",
            m,
            "info",
            lambda p: _rewrite(p, raw=lambda b: b"{" + b"\x00garbage" * (len(b) // 8)),
        ),
        _case(
            "header deep",
            "the header nests 100,000 levels",
            m,
            "info",
            lambda p: _rewrite(p, raw=lambda b: deep),
        ),
        _case(
            "metadata number",
            "__metadata__ is a number",
            m,
            "info",
            lambda p: _rewrite(p, header=_set("__metadata__", 3)),
        ),
        _case(
            "metadata string",
            "__metadata__ is a string",
            m,
            "info",
            lambda p: _rewrite(p, header=_set("__metadata__", "mlx")),
        ),
        _case(
            "metadata values",
            "__metadata__ values are not strings",
            m,
            "info",
            lambda p: _rewrite(p, header=_set("__metadata__", {"format": {"x": 1}})),
        ),
        _case(
            "duplicate name",
            "a tensor name appears twice",
            m,
            "info",
            lambda p: _rewrite(p, raw=_duplicate_first),
        ),
        _case(
            "offsets overlap",
            "two tensors' data overlap",
            m,
            "info",
            lambda p: _rewrite(p, header=_overlap),
        ),
        _case(
            "offsets gap",
            "a gap between two tensors' data",
            m,
            "info",
            lambda p: _rewrite(p, header=_shift(5, 8), tail=bytes(8)),
        ),
        _case(
            "trailing bytes",
            "bytes after the last tensor",
            m,
            "info",
            lambda p: _rewrite(p, tail=bytes(64)),
        ),
        _case(
            "size vs shape",
            "a shape that does not fit its bytes",
            m,
            "info",
            lambda p: _rewrite(p, header=lambda h: _grow(h, NORM)),
        ),
        _case(
            "unknown dtype",
            "a dtype safetensors does not define",
            m,
            "info",
            lambda p: _rewrite(p, _relabel_any(NORM, "Q4_K")),
        ),
        _case(
            "float shape",
            "a shape of floats",
            m,
            "info",
            lambda p: _rewrite(p, header=lambda h: _float_shape(h, NORM)),
        ),
        # the published layout (the model file)
        _case(
            "model dtype",
            "a norm relabelled BF16 -> F16",
            m,
            "info",
            lambda p: _rewrite(p, _relabel(NORM, "F16")),
        ),
        _case(
            "model missing",
            "a tensor missing",
            m,
            "info",
            lambda p: _rewrite(p, _drop(lambda n: n != "transformer.layers.1.norm2.weight")),
        ),
        _case("model extra", "a tensor too many", m, "info", lambda p: _rewrite(p, _extra)),
        _case(
            "model transposed",
            "a weight transposed",
            m,
            "info",
            lambda p: _rewrite(p, _reshape(SCALES, lambda s: s[::-1])),
        ),
        _folder_case("q4 named q8", "a 4-bit file named .q8", "info", _renamed_q8),
        # values (the model file)
        _case(
            "norm nan", "a norm all NaN", m, "load", lambda p: _rewrite(p, _fill(NORM, BF16_NAN))
        ),
        _case(
            "norm inf",
            "the output norm infinite",
            m,
            "load",
            lambda p: _rewrite(p, _fill("out_norm.weight", BF16_INF)),
        ),
        _case(
            "scales nan",
            "a quantized layer's scales NaN",
            m,
            "load",
            lambda p: _rewrite(p, _fill(SCALES, BF16_NAN)),
        ),
        _case("model zeros", "the model's data never written (all zeros)", m, "load", _zero_data),
        _case("many tensors", "a header declaring 150,000 tensors", m, "info", _many_tensors),
        _case(
            "all nan",
            "every float tensor NaN",
            m,
            "chat",
            lambda p: _rewrite(p, _fill("*", BF16_NAN)),
        ),
        # config.json
        _case("config not json", "config.json is not JSON", c, "info", _config(lambda s: s[:-20])),
        _case("config nan", "a NaN in config.json", c, "info", _set_config("hidden_scale", "NaN")),
        _case(
            "config 1e999",
            "a number too large for a float",
            c,
            "info",
            _set_config("hidden_scale", "1e999"),
        ),
        _case(
            "config 1e9 layers",
            "num_layers 1,000,000,000",
            c,
            "info",
            _set_config("num_layers", "1000000000"),
        ),
        _case(
            "config 1e5 layers",
            "num_layers 100,000",
            c,
            "info",
            _set_config("num_layers", "100000"),
        ),
        _case(
            "config delays",
            "acoustic delays of 10^9 frames",
            c,
            "info",
            _set_config("delays", json.dumps([0] + [10**9] * 16)),
        ),
        _case("config negative", "a negative dim", c, "info", _set_config("dim", "-256")),
        _case(
            "config deep",
            "config.json nests 100,000 levels",
            c,
            "info",
            _config(lambda s: "[" * 100_000 + "]" * 100_000),
        ),
        _case("config list", "config.json is a list", c, "info", _config(lambda s: "[1, 2, 3]")),
        _case(
            "config huge int",
            "an integer of 5000 digits",
            c,
            "info",
            _set_config("dim", "9" * 5000),
        ),
        # the Mimi codec
        _case("mimi truncated", "the Mimi file cut in half", x, "info", _cut(0.5)),
        _case("mimi empty", "the Mimi file is empty", x, "info", _bytes(b"")),
        _case(
            "mimi dtype",
            "a Mimi weight relabelled F32 -> I32",
            x,
            "info",
            lambda p: _rewrite(p, _relabel(MIMI_WEIGHT, "I32")),
        ),
        _case(
            "mimi missing",
            "a Mimi tensor missing",
            x,
            "info",
            lambda p: _rewrite(p, _drop(lambda n: n != MIMI_WEIGHT)),
        ),
        _case("mimi extra", "a Mimi tensor too many", x, "info", lambda p: _rewrite(p, _extra)),
        _case(
            "mimi transposed",
            "a Mimi weight transposed",
            x,
            "info",
            lambda p: _rewrite(p, _reshape(MIMI_WEIGHT, lambda s: s[::-1])),
        ),
        _case(
            "mimi codebooks",
            "a Mimi with 7 codebooks (the model streams 8)",
            x,
            "info",
            lambda p: _rewrite(p, _drop(_codebooks_below(7))),
        ),
        _case(
            "mimi metadata",
            "the Mimi's __metadata__ is a number",
            x,
            "info",
            lambda p: _rewrite(p, header=_set("__metadata__", 1)),
        ),
        _case(
            "mimi nan",
            "a Mimi weight NaN",
            x,
            "load",
            lambda p: _rewrite(p, _fill(MIMI_WEIGHT, F32_NAN)),
        ),
        _case(
            "mimi nan chat",
            "a Mimi weight NaN, in a conversation",
            x,
            "chat",
            lambda p: _rewrite(p, _fill(MIMI_WEIGHT, F32_NAN)),
        ),
        _case("mimi zeros", "the Mimi's data never written (all zeros)", x, "load", _zero_data),
        _case(
            "mimi huge header",
            "a 40 MB Mimi header",
            x,
            "info",
            lambda p: _rewrite(p, raw=lambda b: b + b" " * (40 << 20)),
        ),
        # the text tokenizer
        _case(
            "tokenizer noise", "the tokenizer is random bytes", t, "info", _bytes(os.urandom(4096))
        ),
        _case("tokenizer empty", "the tokenizer is empty", t, "info", _bytes(b"")),
        _case("tokenizer truncated", "the tokenizer cut in half", t, "info", _cut(0.5)),
        _case(
            "tokenizer vocab",
            "a tokenizer of 500 pieces for a 1000-word model",
            t,
            "info",
            lambda p: _bytes(text_tokenizer_bytes(500))(p),
        ),
        # the folder
        _folder_case("no model", "no model file in the folder", "info", _no_model),
        _folder_case("two models", "two model files in the folder", "info", _second_model),
    ]


def _grow(h: dict[str, Any], name: str) -> dict[str, Any]:
    h[name]["shape"] = [h[name]["shape"][0] + 1]
    return h


def _float_shape(h: dict[str, Any], name: str) -> dict[str, Any]:
    h[name]["shape"] = [float(d) for d in h[name]["shape"]]
    return h


def _relabel_any(name: str, dtype: str) -> Callable[[list[_Tensor]], list[_Tensor]]:
    def edit(tensors: list[_Tensor]) -> list[_Tensor]:
        for t in tensors:
            if t.name == name:
                t.dtype = dtype
        return tensors

    return edit


def make_broken(case: BrokenCase, source: Path, dest: Path) -> Path:
    """`source` (a good checkpoint folder) linked into `dest`, then broken as `case` says."""
    dest.mkdir(parents=True)
    for f in sorted(source.iterdir()):
        if f.is_file():
            link_or_copy(f, dest / f.name)
    case.breaks(dest)
    return dest


# --- running a case as a user would --------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    case: str
    command: str
    exit_code: int | None  # None: killed at the timeout
    seconds: float
    lines: list[str]  # what it printed, blank lines left out
    named: bool  # whether the output names the culprit file (or folder)

    @property
    def traceback(self) -> bool:
        return any("Traceback" in line for line in self.lines)

    @property
    def internal(self) -> bool:
        return any("internal error" in line for line in self.lines)

    @property
    def clean_refusal(self) -> bool:
        """The target: ended in time, non-zero, at most 4 lines naming the file, no traceback,
        no "internal error"."""
        return (
            self.exit_code not in (None, 0)
            and len(self.lines) <= MAX_LINES
            and self.named
            and not self.traceback
            and not self.internal
        )


MAX_LINES = 4


def command_line(command: str, folder: Path, speech: Path) -> list[str]:
    """The arguments of `assistant <command>` on a checkpoint folder."""
    if command == "chat":
        return ["chat", "--checkpoint", str(folder), "--input", str(speech), "--no-dashboard"]
    return [command, str(folder)]


def run_case(
    case: BrokenCase,
    folder: Path,
    command: str,
    *,
    speech: Path,
    env: dict[str, str],
    timeout: float = 60.0,
    python: str = sys.executable,
    starter: WarmStarter | None = None,
) -> Outcome:
    """`python -m assistant <command>` on the broken `folder` (a fresh process, forked from
    `starter` if given); stdout and stderr together."""
    code, out, seconds = run_assistant(
        starter, command_line(command, folder, speech), env=env, timeout=timeout, python=python
    )
    lines = [line for line in out.splitlines() if line.strip()]
    culprit = culprit_path(folder, case.culprit)
    named = any(str(culprit) in line or culprit.name in line for line in lines)
    return Outcome(case.name, command, code, seconds, lines, named)
