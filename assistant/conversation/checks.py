"""A conversation's settings, checked when they are made: before a file is read, a model
loaded or a device opened, so a mistake costs the user a second, not a model load.

The delay budget is checked by `LagPolicy` and sampling by `SamplingConfig`; here the rest:
durations, the input and output files, and what only makes sense together.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import AudioError, SettingError, UsageError
from ..files import describe_type, require_regular, same_file


def check_settings(*, duration_s: object, input_file: object, output_file: object) -> None:
    """What no conversation can run with (`ChatSettings` asks as it is made). Files are checked
    by the command line, which reads them first (a service finds a missing file when a
    conversation starts, and says so)."""
    if duration_s is not None and not (
        isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0
    ):
        raise SettingError(f"--duration must be a positive number of seconds, got {duration_s}")
    if output_file is not None and input_file is None:
        raise SettingError(
            "--output needs --input: Moshi's side is written to a file only when the user's "
            "side comes from one"
        )


def check_files(input_file: Path | None, output_file: Path | None) -> None:
    """The input is a regular file and the output can be written: before a model loads."""
    if input_file is not None:
        require_regular(input_file, AudioError, what="audio file")
    if output_file is not None:
        if input_file is not None and same_file(input_file, output_file):
            # Whatever path reaches it (a link, a relative path): the user's own recording.
            raise UsageError(
                f"--output {output_file} is the same file as --input {input_file}; "
                "writing Moshi's answer there would destroy the input (choose another --output)"
            )
        check_output_file(output_file)


def check_output_file(path: Path) -> None:
    """A WAV that can be written: in an existing, writable folder, and not something that is
    not a regular file (opening a FIFO for writing would block)."""
    folder = path.parent
    if not folder.is_dir():
        raise AudioError("cannot write the output here: no such folder", path=folder)
    if os.path.lexists(path):
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            raise AudioError(f"cannot write the output: {e.strerror}", path=path) from None
        if not Path(path).is_file():
            raise AudioError(f"is {describe_type(mode)}; the output must be a file", path=path)
    if not os.access(folder, os.W_OK):
        raise AudioError("cannot write the output here: permission denied", path=folder)
