"""Patient matrix: the last T events of a history as a fixed-size ``[T, D]`` float array.

Row layout (D = embedding dim + 2):
  ``[0:dim]``  the event's embedding vector (zeros for a code the embedding never saw:
               not the mean vector, which would claim the event is like an average one;
               zeros say "an event, nothing known about it", as the next channel shows),
  ``[dim]``    1.0 = "an event is here" (so an unknown-code event still differs from padding),
  ``[dim+1]``  time before the last event, ``log1p(days) / log1p(36500)`` (0 = most recent).
Padding rows are all zeros and come first (left padding): the most recent event is always in
the last row, so position means "how many events before the end" for every patient. The model
masks all-zero rows out of its pooling, so padding carries no meaning.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from aeep_core.sequences.embedding import EventEmbedding, event_token

EXTRA_CHANNELS = 2
_MAX_LOG_DAYS = math.log1p(36_500.0)  # a century: keeps the recency channel within [0, 1]


def choose_length(lengths: list[int] | np.ndarray, quantile: float = 0.75, lo: int = 16, hi: int = 256) -> int:
    """T from the data: the ``quantile`` of history lengths, rounded up to a multiple of 8, in [lo, hi].

    The 75th percentile keeps most histories whole while a few very long ones (decades of
    visits) are cut to their recent part instead of making every matrix mostly padding.
    """
    if len(lengths) == 0:
        return lo
    t = float(np.quantile(np.asarray(lengths, dtype=np.float64), quantile))
    return int(min(hi, max(lo, 8 * math.ceil(t / 8))))


def recent_events(events: list[dict[str, str]], length: int) -> list[dict[str, str]]:
    """The events a matrix of ``length`` rows holds: the last ``length`` of the history."""
    return events[-length:] if length > 0 else []


def unknown_events(histories: list[list[dict[str, str]]], embedding: EventEmbedding, length: int) -> tuple[int, int]:
    """(events whose code ``embedding`` never saw, events in the matrices), counting only
    the events the matrices hold: an older event, unknown or not, never reaches the model."""
    unknown = total = 0
    for events in histories:
        recent = recent_events(events, length)
        total += len(recent)
        unknown += sum(event_token(ev) not in embedding for ev in recent)
    return unknown, total


def patient_matrix(events: list[dict[str, str]], embedding: EventEmbedding, length: int) -> np.ndarray:
    """The ``[length, dim + 2]`` matrix of the last ``length`` events (left-padded with zeros)."""
    out = np.zeros((length, embedding.dim + EXTRA_CHANNELS), dtype=np.float32)
    recent = recent_events(events, length)
    if not recent:
        return out
    last = datetime.fromisoformat(recent[-1]["time"])
    start = length - len(recent)
    for row, ev in enumerate(recent, start=start):
        vec = embedding.vector(event_token(ev))
        if vec is not None:
            out[row, : embedding.dim] = vec
        out[row, embedding.dim] = 1.0
        days = max((last - datetime.fromisoformat(ev["time"])).total_seconds() / 86_400.0, 0.0)
        out[row, embedding.dim + 1] = min(math.log1p(days) / _MAX_LOG_DAYS, 1.0)
    return out


def patient_matrices(histories: list[list[dict[str, str]]], embedding: EventEmbedding, length: int) -> np.ndarray:
    """Stack :func:`patient_matrix` for many patients: ``float32 [N, length, dim + 2]``."""
    out = np.zeros((len(histories), length, embedding.dim + EXTRA_CHANNELS), dtype=np.float32)
    for i, events in enumerate(histories):
        out[i] = patient_matrix(events, embedding, length)
    return out
