"""Every error the assistant raises on purpose lives here.

Each one renders as a single line naming the file (when there is one) and what is wrong;
the CLI edge prints that line and exits non-zero, with a traceback only when
ASSISTANT_DEBUG is set.
"""

from __future__ import annotations

from os import PathLike


class AssistantError(Exception):
    """Base class: an expected failure with a one-line explanation for the user."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | PathLike | None = None, hint: str = "") -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        line = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            line += f" ({self.hint})"
        return line


class CheckpointError(AssistantError):
    """A checkpoint file is missing, unreadable, corrupt or not what it claims to be."""


class ConfigError(CheckpointError):
    """A config.json is unreadable or does not describe a Moshi model we can build."""


class MismatchError(CheckpointError):
    """Weights do not match the architecture; every mismatch is kept in `problems`."""

    def __init__(self, problems: list[str], *, path: str | PathLike | None = None) -> None:
        self.problems = problems
        shown = "; ".join(problems[:3])
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        super().__init__(
            f"weights do not match the architecture: {shown}{more}",
            path=path,
            hint="`assistant info --json` lists every mismatch",
        )


class UnsupportedQuantizationError(CheckpointError):
    """The tensors imply a bit width or group size MLX cannot run."""


class TokenizerError(CheckpointError):
    """The text tokenizer is unreadable or its vocabulary does not fit the model."""


class CodecError(AssistantError):
    """The Mimi codec failed: a worker crashed, hung or could not be built, or it was given
    input it cannot take."""


class CodecFileError(CodecError, CheckpointError):
    """The Mimi codec file is missing, unreadable or unusable with this model (a checkpoint
    problem, found before any codec runs)."""


class MissingFilesError(AssistantError):
    """Files needed for a checkpoint are neither on disk nor downloadable (offline)."""


class DownloadError(AssistantError):
    """The hub refused or failed a download."""


class InsufficientMemoryError(AssistantError):
    """The checkpoint would not fit in this machine's memory."""


class InsufficientDiskError(AssistantError):
    """Not enough free disk space for what is about to be written."""


class UsageError(AssistantError):
    """The command line asks for something contradictory or unknown."""

    exit_code = 2


class InvalidCodesError(UsageError, ValueError):
    """User audio codes of the wrong shape or outside 0..card-1."""


class EngineConfigError(UsageError, ValueError):
    """The model, the config and the tokenizer do not describe the same architecture."""


class SettingError(UsageError, ValueError):
    """A setting out of its range (a delay budget, a duration ...), refused before anything runs."""


class SamplingConfigError(UsageError, ValueError):
    """A sampling setting out of range (negative temperature or top-k)."""


class StorageError(AssistantError):
    """The data folder (session recordings, the log) cannot be created or written."""


class AudioError(AssistantError):
    """An audio file or device cannot be read, written or used."""


class BenchError(AssistantError):
    """`assistant bench` cannot compare what it was given, or could not measure all of it."""


class IncompatibleVariantsError(BenchError):
    """Checkpoints of different architectures: their steps cannot be compared token for token."""


class ServiceError(AssistantError):
    """The background service cannot start, or refused or failed a request."""


class ServiceNotRunningError(ServiceError):
    """No service answers: nothing started it, or it stopped."""


class ServiceRefusedError(ServiceError):
    """The service understood the request and refused it (the reason is in the message)."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        self.status = status
        super().__init__(message)


class HistoryError(AssistantError):
    """A past conversation cannot be read, played, exported or deleted."""


class UnknownSessionError(HistoryError):
    """No conversation has this id (the service answers 404)."""


class SessionBusyError(HistoryError):
    """The conversation is being recorded, played or transcribed: it cannot be changed now."""


class TranscriptionError(AssistantError):
    """The user's side of a conversation could not be transcribed."""


class PlatformError(AssistantError):
    """The command needs another operating system (the menu bar needs macOS)."""


class PrefillNotSupportedError(AssistantError, NotImplementedError):
    """More than one step at once: moshi_mlx's Transformer passes no causal mask, so a
    multi-step prefill would let early steps see later ones. Feed steps one at a time."""


class TranscriptionStopped(AssistantError):
    """A transcription was asked to stop (its `should_stop` said so) before it finished."""
