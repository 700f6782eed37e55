"""How closely a variant follows the reference, one step at a time, on the same history.

Two free runs diverge after their first different token, and from then on they are compared
on different conversations. So the reference runs free and records each step's tokens and
text logits; every other variant is teacher-forced: after each of its steps the history is
overwritten with the reference's tokens for that step (`StreamingEngine.force_tokens`), so
step s of every variant sees exactly the reference's steps 0..s-1.

Per step: does the variant sample the same text token, the same audio token in each of the
`dep_q` codebooks (within a step the depformer still runs on the variant's own earlier
codebooks), and how far apart are the two text distributions: KL(reference || variant) of the
softmaxed logits, in nats. The reference against itself is 100 %, 100 % and 0 exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Recording:
    """What a run produced at each step."""

    tokens: np.ndarray  # int32 [steps, 1 + dep_q]: text token, then the dep_q audio tokens
    text_logits: np.ndarray  # float32 [steps, text_card]


@dataclass(frozen=True)
class Fidelity:
    reference: str
    steps: int
    text_agreement: float  # percent of steps with the reference's text token
    audio_agreement: float  # percent over all codebooks and steps
    per_codebook: tuple[float, ...]  # percent, codebook by codebook
    kl_mean: float  # nats, KL(reference || variant) of the text distributions
    kl_max: float

    def to_dict(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "steps": self.steps,
            "text_agreement_percent": round(self.text_agreement, 3),
            "audio_agreement_percent": round(self.audio_agreement, 3),
            "audio_agreement_per_codebook_percent": [round(a, 3) for a in self.per_codebook],
            "text_kl_mean_nats": self.kl_mean,
            "text_kl_max_nats": self.kl_max,
        }


def compare(run: Recording, reference: Recording, reference_label: str) -> Fidelity:
    """Agreement and KL of `run` against `reference`, over the steps both have."""
    n = min(len(run.tokens), len(reference.tokens))
    if n == 0:
        raise ValueError("no steps to compare")
    same = run.tokens[:n] == reference.tokens[:n]
    per_codebook = same[:, 1:].mean(axis=0) * 100
    kl = kl_divergence(reference.text_logits[:n], run.text_logits[:n])
    return Fidelity(
        reference=reference_label,
        steps=n,
        text_agreement=float(same[:, 0].mean() * 100),
        audio_agreement=float(same[:, 1:].mean() * 100),
        per_codebook=tuple(float(a) for a in per_codebook),
        kl_mean=float(kl.mean()),
        kl_max=float(kl.max()),
    )


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL(softmax(p) || softmax(q)) per row, in nats (float64: tiny differences matter)."""
    log_p = log_softmax(np.asarray(p_logits, dtype=np.float64))
    log_q = log_softmax(np.asarray(q_logits, dtype=np.float64))
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)
    return np.maximum(kl, 0.0)  # >= 0 in exact arithmetic; rounding can dip below


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
