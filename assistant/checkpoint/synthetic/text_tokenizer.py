"""A SentencePiece text tokenizer with an exact vocabulary size, trained offline.

SentencePiece cannot learn 32000 pieces from a small corpus, so we learn at most
`LEARNED_PIECES` from an English corpus generated here, then append user-defined
pseudo-word pieces until the vocabulary is exactly the size the LM expects. Ids match
moshi's tokenizer: 0 `<unk>`, 1 `<s>`, 2 `</s>`, 3 `<pad>`; learned pieces come next, so
real-looking text has low ids as in the published `tokenizer_spm_32k_3.model`.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Iterator
from pathlib import Path

import sentencepiece as spm

LEARNED_PIECES = 1000
MIN_VOCAB = 256  # below this the corpus' characters alone may not fit
_USER_DEFINED = 4  # sentencepiece.ModelProto.SentencePiece.Type.USER_DEFINED


def write_text_tokenizer(path: str | Path, vocab_size: int) -> Path:
    """Write a SentencePiece model with exactly `vocab_size` pieces (deterministic)."""
    path = Path(path)
    path.write_bytes(text_tokenizer_bytes(vocab_size))
    return path


def text_tokenizer_bytes(vocab_size: int) -> bytes:
    """The serialized SentencePiece model `write_text_tokenizer` writes."""
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB}, got {vocab_size}")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()),
        model_writer=buf,
        vocab_size=min(vocab_size, LEARNED_PIECES),
        hard_vocab_limit=False,  # learn what the corpus supports; pseudo-words fill the rest
        model_type="unigram",
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        num_threads=1,  # one thread: the same bytes on every run
        minloglevel=3,  # training logs go to stderr otherwise
    )
    model = buf.getvalue()
    learned = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    if learned > vocab_size:
        raise RuntimeError(f"SentencePiece learned {learned} pieces, more than {vocab_size}")
    sp = spm.SentencePieceProcessor(model_proto=model)
    taken = {sp.id_to_piece(i) for i in range(learned)}
    fillers = itertools.islice((w for w in _pseudo_words() if w not in taken), vocab_size - learned)
    return model + b"".join(_piece(w) for w in fillers)


def _pseudo_words() -> Iterator[str]:
    """Pronounceable word pieces ("▁bako", "▁tesimu", ...): a random-weight model's babble
    then reads as babble, not as a wall of placeholder tags."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    for n in itertools.count(2):
        for combo in itertools.product(syllables, repeat=n):
            yield "\u2581" + "".join(combo)


def _piece(text: str) -> bytes:
    """One `ModelProto.pieces` entry in protobuf wire format (appended entries extend the
    repeated field; this avoids depending on the protobuf package)."""
    raw = text.encode()
    body = b"\x0a" + _varint(len(raw)) + raw  # 1: piece
    body += b"\x15" + struct.pack("<f", 0.0)  # 2: score
    body += b"\x18" + _varint(_USER_DEFINED)  # 3: type
    return b"\x0a" + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_SUBJECTS = [
    "the assistant",
    "my friend",
    "a small robot",
    "the old teacher",
    "our neighbour",
    "this computer",
    "the weather",
    "a quiet river",
    "the young musician",
    "everyone here",
    "the doctor",
    "your sister",
    "the little cat",
    "a clever student",
    "the city council",
]
_VERBS = [
    "likes",
    "remembers",
    "explains",
    "builds",
    "watches",
    "answers",
    "finds",
    "carries",
    "describes",
    "follows",
    "measures",
    "paints",
    "repairs",
    "understands",
    "questions",
]
_OBJECTS = [
    "the morning news",
    "a long story",
    "three green apples",
    "the broken window",
    "every difficult question",
    "an interesting book",
    "the mountain road",
    "warm bread",
    "a strange noise",
    "the quarterly report",
    "twelve yellow flowers",
    "the train schedule",
    "my favourite song",
    "the kitchen table",
    "a bright idea",
    "the evening sky",
]
_ENDINGS = [
    "before lunch",
    "after the meeting",
    "with great care",
    "in the garden",
    "every Sunday",
    "without a word",
    "at half past seven",
    "near the station",
    "during the storm",
    "for the first time",
    "quite slowly",
    "as quickly as possible",
]
_QUESTIONS = [
    "What time is it in Tokyo right now?",
    "Could you tell me a joke about penguins?",
    "How far is the Moon from the Earth?",
    "Why is the sky blue during the day?",
    "Can you recommend a good book for the weekend?",
    "Do you know how to bake sourdough bread?",
    "Where should we go on holiday next summer?",
    "Who wrote the first computer program?",
    "Is it going to rain tomorrow afternoon?",
    "How many legs does a spider have?",
    "What's your favourite kind of music, and why?",
    "Hmm, I'm not sure. Let me think about it for a second.",
    "Yes, of course! I'd be happy to help you with that.",
    "No, I don't think that's quite right, actually.",
    "Hello there, how are you doing today?",
    "Thanks a lot, that was really helpful. Goodbye!",
]


def corpus() -> list[str]:
    """A few hundred varied English sentences, the same every time."""
    sentences = list(_QUESTIONS)
    combos = itertools.product(_SUBJECTS, _VERBS, _OBJECTS, _ENDINGS)
    # A fixed stride through the product gives variety without randomness.
    for i, (s, v, o, e) in enumerate(itertools.islice(combos, 0, None, 97)):
        sentence = f"{s} {v} {o} {e}"
        if i % 3 == 0:
            sentence = sentence.upper()[0] + sentence[1:] + "."
        elif i % 3 == 1:
            sentence = f"Yesterday, {sentence}!"
        else:
            sentence = f"I think {sentence}, don't you? It costs {i * 7 % 100} dollars."
        sentences.append(sentence)
    return sentences
