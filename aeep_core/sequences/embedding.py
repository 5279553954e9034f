"""Event embedding: word2vec skip-gram over the pool's patient histories (gensim).

Each event is a token ``type:code`` (the type keeps codes from different vocabularies apart:
a CVX vaccine code and a SNOMED code may share digits). A patient's time-ordered events are
a sentence, so events that happen close together in many histories get close vectors. The
model sees only event sequences, never labels, so it may be trained on the whole pool.

Why gensim: it is the maintained reference word2vec (optimised C loops, fast on the
events of a whole Synthea export on one core), installs cleanly from a wheel beside our numpy and
scipy, and with one worker thread and a fixed seed its result is reproducible.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aeep_core.extras import require


def event_token(event: dict[str, str]) -> str:
    """The vocabulary token of an event: ``type:code``."""
    return f"{event.get('type', 'event')}:{event['code']}"


@dataclass
class EventEmbedding:
    """Unit-length vectors for the event tokens seen in training; unknown tokens have none."""

    tokens: list[str]
    vectors: np.ndarray  # float32 [V, dim], rows L2-normalised

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def vector(self, token: str) -> np.ndarray | None:
        """The vector of ``token``, or None for a token not seen in training."""
        i = self.index.get(token)
        return None if i is None else self.vectors[i]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two known tokens."""
        va, vb = self.vector(a), self.vector(b)
        if va is None or vb is None:
            raise KeyError(f"unknown event token {a if va is None else b!r}")
        return float(va @ vb)

    def as_dict(self) -> dict[str, Any]:
        """The tokens and vectors as JSON-ready values, bit for bit: the vectors are the
        base64 of their little-endian float32 bytes (``numpy.frombuffer(..., "<f4")``), so
        a model taken away builds exactly the matrices the project trained on."""
        vectors = np.ascontiguousarray(self.vectors, dtype="<f4")
        return {
            "tokens": list(self.tokens),
            "dim": self.dim,
            "vectors": base64.b64encode(vectors.tobytes()).decode("ascii"),
            "vectors_dtype": "<f4",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventEmbedding:
        """The embedding :meth:`as_dict` described; ValueError when the parts disagree."""
        tokens, dim = list(data["tokens"]), int(data["dim"])
        flat = np.frombuffer(base64.b64decode(data["vectors"]), dtype="<f4")
        if flat.size != len(tokens) * dim:
            raise ValueError(f"{flat.size} vector values for {len(tokens)} tokens of dimension {dim}")
        return cls(tokens, flat.reshape(len(tokens), dim).astype(np.float32))


def train_event_embedding(
    sequences: Iterable[Sequence[str]],
    dim: int = 32,
    window: int = 5,
    min_count: int = 1,
    epochs: int | None = None,
    seed: int = 0,
) -> EventEmbedding:
    """Train skip-gram word2vec on token sequences (one per patient) and return the vectors.

    ``epochs`` defaults to enough passes for about two million token updates (5 to 50): a
    small pool needs more passes to move its vectors away from their random start.
    """
    Word2Vec = require("gensim.models", "sequences", "reading medical event sequences").Word2Vec

    sentences = [list(s) for s in sequences if len(s) > 0]
    if not sentences:
        raise ValueError("no events to train the event embedding on")
    n_tokens = sum(len(s) for s in sentences)
    if epochs is None:
        epochs = int(np.clip(2_000_000 // max(n_tokens, 1), 5, 50))
    model = Word2Vec(
        sentences,
        vector_size=dim,
        window=window,
        min_count=min_count,
        sg=1,  # skip-gram: better than CBOW for rare tokens, and most codes are rare
        negative=5,
        sample=1e-3,
        epochs=epochs,
        seed=seed,
        workers=1,  # one thread: reproducible (threads reorder updates), and the CPUs are shared
    )
    tokens = list(model.wv.index_to_key)
    vecs = np.asarray(model.wv.vectors, dtype=np.float32)
    # Unit length: raw word2vec norms grow with frequency, which would make common events
    # (wellness visits) shout over rare, telling ones in the CNN input.
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-8)
    return EventEmbedding(tokens, vecs)
