"""The streaming engine: one Moshi step per 80 ms audio frame, for as long as the talk lasts.

It runs moshi_mlx's own modules (same weights, same ops as `LmGen`, token for token with
greedy sampling) but fixes the reference runtime's long-conversation faults:

- no `max_steps`: only the last `max_delay + 1` steps of tokens are kept (a host-side ring);
- a correct attention window: a ring of exactly `context` key/value slots per layer, so each
  step attends to the last `context` steps, itself included, at any hour of the talk;
- flat memory: the ring is allocated once and updated in place.

The whole step (main transformer, text sampling, the depformer's `dep_q` slices with their
sampling) is one fixed-shape function, traced once by `mx.compile` (see `step_graph`): per
step the host uploads one small array of ids (and the sampling keys), replays the trace and
reads the text token and audio codes back in a single transfer. The reference builds the
whole graph in Python every step and syncs with the device ~20 times.

"Listen first" (`hold`): until the user has spoken, what Moshi samples is replaced, in its
history and its result, by silence as the model knows it from a conversation's start: text
padding and, for its audio, the initial token moshi_mlx feeds for codebooks still inside
their delay. Its streams say nothing (no text, no audio frame), and the next steps see a Moshi
that has been listening quietly, not one that spoke unheard.

For comparisons (`assistant bench`) the engine can also return each step's text logits
(`capture_text_logits`, one more transfer) and be teacher-forced: `force_tokens` replaces
the step just taken with another run's tokens, so the next step sees that run's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import mlx.core as mx
import numpy as np
from moshi_mlx.models import Lm

from ..checkpoint.config import MoshiConfig
from ..errors import EngineConfigError, InvalidCodesError, TokenizerError, UsageError
from .sampling import KeyStream, SamplingConfig
from .step_graph import StepGraph

# Output text id 0 ends a padding run; `config.existing_text_padding_id` (3) is padding.
_END_OF_PADDING_ID = 0


class TextTokenizer(Protocol):
    """What the engine needs from a SentencePiece processor."""

    def id_to_piece(self, id: int) -> str: ...


@dataclass(frozen=True)
class StepResult:
    """What one step produced.

    `piece` is the decoded text (None for padding ids, or when no tokenizer was given);
    `audio_codes` are Moshi's `dep_q` codes for one frame, uint32 [dep_q], or None while
    the acoustic delay fills (the first `max_delay` steps), as in `LmGen.last_audio_tokens`.
    `tokens` is what this step sampled, int32 [1 + dep_q]: the text token, then one token per
    generated codebook before the acoustic delay (codebook k's token belongs to the frame
    `step - delay_k`). `text_logits` (float32 [text_card]) only with `capture_text_logits`.
    """

    step: int
    text_token: int
    piece: str | None
    audio_codes: np.ndarray | None
    tokens: np.ndarray | None = None
    text_logits: np.ndarray | None = None

    @property
    def is_padding(self) -> bool:
        return self.piece is None


class StreamingEngine:
    """Full-duplex Moshi inference with no step limit and a correct attention window.

    `compile`: run the whole fixed-shape step through `mx.compile`; None tries it and falls
    back to the same step run plain if this machine cannot compile (MLX's CPU backend needs
    a C++ compiler at run time); True raises instead. Weights are captured when the step is
    traced; `load_weights` on the model later is noticed (the step is traced again), partial
    in-place edits are not.
    `capture_text_logits`: also return each step's text logits (for fidelity measurements).
    """

    def __init__(
        self,
        model: Lm,
        config: MoshiConfig,
        sampling: SamplingConfig | None = None,
        text_tokenizer: TextTokenizer | None = None,
        *,
        compile: bool | None = None,
        capture_text_logits: bool = False,
    ) -> None:
        _check_model(model, config)
        self.model = model
        self.config = config
        self.sampling = sampling or SamplingConfig()
        self.text_tokenizer = text_tokenizer
        if text_tokenizer is not None and hasattr(text_tokenizer, "get_piece_size"):
            size = text_tokenizer.get_piece_size()
            if size < config.text_card:
                raise TokenizerError(
                    f"text tokenizer has {size} pieces, the model emits up to {config.text_card}"
                )
        self.dep_q = config.dep_q
        self.n_user = config.user_codebooks
        self.delays = [int(d) for d in config.delays[1:]]  # per audio codebook
        self.max_delay = max(self.delays)
        self._padding_ids = {_END_OF_PADDING_ID, config.existing_text_padding_id}

        self.graph = StepGraph(model, self.sampling, config.context, compile=compile)
        self._keys = KeyStream(self.sampling.seed)
        self.capture_text_logits = capture_text_logits
        # Token history, time-indexed modulo `max_delay + 1`: row 0 text, rows 1..n_q audio
        # (Moshi's dep_q codebooks first, then the user's), exactly LmGen's gen_sequence.
        self._hist_len = self.max_delay + 1
        self._hist = np.zeros((1 + config.n_q, self._hist_len), dtype=np.int32)
        self._step = 0
        # Listen first: while set, each step's tokens become silence (see the module's doc).
        self.hold = False
        self._silence = np.array(
            [config.existing_text_padding_id] + [config.card] * self.dep_q, dtype=np.int32
        )

    # --- public API -------------------------------------------------------------------------
    @property
    def steps_taken(self) -> int:
        return self._step

    @property
    def compiled(self) -> bool:
        """Whether the step runs compiled (known after the first step)."""
        return self.graph.compiled

    def reset(self) -> None:
        """Start a new conversation on the same weights (equal to a fresh engine).

        The ring keeps its buffers: slots not written since are masked, whatever they hold."""
        self.hold = False
        self._keys.reset()
        self._hist[:] = 0
        self._step = 0

    def warmup(self, steps: int = 1) -> None:
        """Run `steps` steps, then one at the start of each longer attention span (allocates
        the ring, traces and compiles every shape the talk will use), then reset. One is
        enough: the steps after it ran at their usual speed (tiny checkpoint, CPU)."""
        silence = np.zeros(self.n_user, dtype=np.int32)
        for _ in range(steps):
            self.step(silence)
        for span in self.graph.spans[:-1]:
            self._step = max(self._step, span)  # the history read there is irrelevant
            self.step(silence)
        self.reset()

    def step(self, user_codes: np.ndarray | Sequence[int] | mx.array) -> StepResult:
        """Feed the user's codes for one frame ([n_user], [n_user, 1] or [1, n_user])."""
        codes = self._validate(user_codes)
        s = self._step
        ids = self.step_ids(s)
        # The user's codes enter the history after the inputs are read: with a ring of
        # max_delay + 1 slots, slot s still held step s - 1 - max_delay until now.
        self._hist[1 + self.dep_q :, s % self._hist_len] = codes
        keys = None if self.sampling.is_greedy else self._keys.next_keys(1 + self.dep_q)
        out, logits = self.graph.run(ids, keys, capture_text_logits=self.capture_text_logits)
        text_logits = None
        if logits is not None:
            text_logits = np.array(logits).reshape(-1)  # the bench's one extra transfer
        tokens = np.array(out)  # the one device -> host transfer of the step
        if self.hold:
            tokens = self._silence.copy()  # padding text, the initial audio token
        self._record(s, tokens)
        self._step = s + 1
        return StepResult(
            step=s,
            text_token=int(tokens[0]),
            piece=self._decode(int(tokens[0])),
            audio_codes=self._last_audio(s),
            tokens=tokens,
            text_logits=text_logits,
        )

    def force_tokens(self, tokens: np.ndarray | Sequence[int]) -> None:
        """Teacher forcing: replace what the last step sampled with `tokens` (another run's
        `StepResult.tokens` for the same step), so later steps see that run's history.

        The step's own outputs (its result, its KV cache entries) are unchanged: they only
        depend on earlier steps. Tokens of codebooks still inside their delay are dropped,
        exactly as `step` drops them.
        """
        if self._step == 0:
            raise UsageError("force_tokens needs a step to replace: call step() first")
        arr = np.asarray(tokens)
        n = 1 + self.dep_q
        if arr.shape != (n,) or arr.dtype.kind not in "iu":
            raise InvalidCodesError(
                f"forced tokens must be {n} integers (text, then {self.dep_q} audio), "
                f"got {arr.dtype} {list(arr.shape)}"
            )
        if not 0 <= arr[0] < self.config.text_card:
            raise InvalidCodesError(
                f"forced text token must lie in 0..{self.config.text_card - 1}, got {arr[0]}"
            )
        if arr[1:].min() < 0 or arr[1:].max() >= self.config.card:
            raise InvalidCodesError(
                f"forced audio tokens must lie in 0..{self.config.card - 1}, got {arr[1:].tolist()}"
            )
        self._record(self._step - 1, arr.astype(np.int32))

    # --- internals ----------------------------------------------------------------------------
    def _record(self, s: int, tokens: np.ndarray) -> None:
        """Write step s's text token and audio tokens (at their delayed frames) to the history."""
        self._hist[0, s % self._hist_len] = tokens[0]
        for cb in range(self.dep_q):
            g = s - self.delays[cb]
            if g >= 0:
                self._hist[1 + cb, g % self._hist_len] = tokens[1 + cb]

    def _validate(self, user_codes: np.ndarray | Sequence[int] | mx.array) -> np.ndarray:
        try:
            arr = np.asarray(user_codes)
        except (TypeError, ValueError) as e:
            raise InvalidCodesError(f"user codes are not an array of integers: {e}") from None
        n = self.n_user
        if arr.shape not in ((n,), (n, 1), (1, n)):
            raise InvalidCodesError(
                f"user codes must have shape [{n}], [{n}, 1] or [1, {n}], got {list(arr.shape)}"
            )
        if arr.dtype.kind not in "iu":
            if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
                arr = arr.astype(np.int64)
            else:
                raise InvalidCodesError(f"user codes must be integers, got dtype {arr.dtype}")
        arr = arr.reshape(n)
        if arr.min() < 0 or arr.max() >= self.config.card:
            raise InvalidCodesError(
                f"user codes must lie in 0..{self.config.card - 1}, got {arr.tolist()}"
            )
        return arr.astype(np.int32)

    def step_ids(self, s: int) -> np.ndarray:
        """What step s is fed, as the step function takes it: int32 [2 + n_q], the position,
        the text token, then one token per audio codebook."""
        text_in, audio_in = self._inputs(s)
        return np.concatenate(([s, text_in], audio_in)).astype(np.int32)

    def _inputs(self, s: int) -> tuple[int, np.ndarray]:
        """Text and audio tokens fed at step s (LmGen's rule: step s - 1 - delay, or padding)."""
        text_in = self.config.text_card if s == 0 else int(self._hist[0, (s - 1) % self._hist_len])
        audio_in = np.full(self.config.n_q, self.config.card, dtype=np.int32)
        for cb, d in enumerate(self.delays):
            g = s - 1 - d
            if g >= 0:
                audio_in[cb] = self._hist[1 + cb, g % self._hist_len]
        return text_in, audio_in

    def _decode(self, token: int) -> str | None:
        if token in self._padding_ids or self.text_tokenizer is None:
            return None
        return self.text_tokenizer.id_to_piece(token).replace("▁", " ")

    def _last_audio(self, s: int) -> np.ndarray | None:
        g = s - self.max_delay
        if g < 0:
            return None
        codes = self._hist[1 : 1 + self.dep_q, g % self._hist_len].astype(np.uint32)
        if (codes == self.config.card).any():  # padding, as LmGen checks (never sampled)
            return None
        return codes


def _check_model(model: Lm, config: MoshiConfig) -> None:
    cfg = model.cfg
    problems = []
    if cfg.audio_codebooks != config.n_q:
        problems.append(f"model has {cfg.audio_codebooks} codebooks, config {config.n_q}")
    if cfg.depformer.num_slices != config.dep_q:
        problems.append(
            f"model has {cfg.depformer.num_slices} depformer slices, config {config.dep_q}"
        )
    if cfg.text_out_vocab_size != config.text_card:
        problems.append(
            f"model emits {cfg.text_out_vocab_size} text ids, config {config.text_card}"
        )
    if cfg.audio_vocab_size != config.card + 1:
        problems.append(f"model's audio vocab is {cfg.audio_vocab_size}, config {config.card + 1}")
    if list(cfg.audio_delays) != list(config.delays[1:]):
        problems.append("model and config delays differ")
    if cfg.transformer.context != config.context:
        # The ring has one slot per step of the model's context: the config must agree.
        problems.append(f"model context is {cfg.transformer.context}, config {config.context}")
    if config.dep_q < 1:
        problems.append("the engine needs a depformer (dep_q >= 1)")
    if problems:
        raise EngineConfigError("model does not match config: " + "; ".join(problems))
