"""OMOP at hospital scale: every person's history as columns, and patient matrices built from them in numpy.

The record reader (:func:`.omop.read_omop`) makes one Python dict per event, which is what
the app shows; at 10^8 event rows that is hours and tens of gigabytes. This reader stages the
same rows with the same checks (:func:`.omop.stage_omop`), then lets DuckDB sort them by
person and time and number persons and tokens, and fetches three flat arrays: no Python
object per event. A person's events are one slice of them (``offsets``), and
:func:`matrices` turns many persons into ``[N, T, D]`` patient matrices with a handful of
numpy gathers, equal to :func:`.matrix.patient_matrices` on the same histories.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aeep_core.sequences import tables
from aeep_core.sequences.embedding import EventEmbedding
from aeep_core.sequences.matrix import EXTRA_CHANNELS
from aeep_core.sequences.omop import CODE, TYPE_RANK, OmopSource, omop_source, stage_omop
from aeep_core.sequences.tables import Progress

_MAX_LOG_DAYS = math.log1p(36_500.0)  # as in matrix.py: a century is the top of the recency channel


@dataclass
class EventColumns:
    """Every person's time-ordered events as flat arrays: person ``i``'s are ``offsets[i]:offsets[i + 1]``."""

    persons: list[str]  # person ids, in the person table's order (persons without events left out)
    offsets: np.ndarray  # int64 [N + 1]
    seconds: np.ndarray  # int64 [E]: event time, seconds since 1970 (UTC)
    token: np.ndarray  # int32 [E]: index into ``tokens``
    tokens: list[str]  # "type:code", as event_token() writes them

    @property
    def rows(self) -> int:
        return int(self.offsets[-1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequences(self, persons: np.ndarray | None = None) -> Iterator[list[str]]:
        """Token sequences per person (for word2vec), of ``persons`` (indices) or all."""
        names = np.asarray(self.tokens, dtype=object)
        for i in range(len(self.persons)) if persons is None else persons:
            yield list(names[self.token[self.offsets[i] : self.offsets[i + 1]]])


def read_omop_columns(data: Path | str | OmopSource, progress: Progress | None = None) -> EventColumns:
    """The events of an OMOP folder, database folder or table source as :class:`EventColumns`.

    Same rows, same checks and the same event order as :func:`.omop.read_omop` (which also
    orders ties by text; tied events with one token and one time make equal matrix rows).
    """
    src = data if not isinstance(data, (str, Path)) else omop_source(data)
    con = tables.connect()
    try:
        _, _, total, _ = stage_omop(con, src, text=False)
        # Tokens are keyed by numbers where the event has a concept (most): no text per row.
        key = "COALESCE(NULLIF(cid, 0), -1) AS kc, CASE WHEN cid IS NULL OR cid = 0 THEN src ELSE '' END AS ks"
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _t AS SELECT (row_number() OVER (ORDER BY typ, code)) - 1 AS tid, typ, code, kc, ks "
            f"FROM (SELECT DISTINCT typ, {CODE} AS code, {key} FROM ev WHERE {CODE} IS NOT NULL)"
        )
        tokens = [f"{typ}:{code}" for typ, code in con.execute("SELECT typ, code FROM _t ORDER BY tid").fetchall()]
        # Seconds since 1970 of the time as read_omop prints it (whole seconds, UTC); one
        # sort by person, time, type rank and token, as sort_events() orders a history.
        second = "date_trunc('second', CAST(e.ts AS TIMESTAMP))"
        rank = TYPE_RANK.replace("typ", "e.typ")
        cols = con.execute(
            f"SELECT e.pid, CAST(epoch({second}) AS BIGINT) AS s, t.tid, ({rank}) * 4294967296 + t.tid AS rk "
            f"FROM (SELECT *, {key} FROM ev) e JOIN _t t ON t.typ = e.typ AND t.kc = e.kc AND t.ks = e.ks "
            "WHERE e.pid IN (SELECT pid FROM persons) ORDER BY e.pid, s, rk"
        ).fetchnumpy()
        if progress is not None:
            progress(total, total)
    finally:
        con.close()
    pid = np.asarray(cols["pid"], dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1]]) if len(pid) else np.zeros(0, dtype=np.int64)
    offsets = np.append(starts, len(pid)).astype(np.int64)
    persons = [str(p) for p in pid[starts].tolist()]
    return EventColumns(persons, offsets, np.asarray(cols["s"], dtype=np.int64), np.asarray(cols["tid"], dtype=np.int32), tokens)


def matrices(cols: EventColumns, embedding: EventEmbedding, length: int, persons: np.ndarray | None = None) -> np.ndarray:
    """``float32 [n, length, dim + 2]`` patient matrices of ``persons`` (indices; all when None).

    Row layout and padding as :func:`.matrix.patient_matrix`: the last ``length`` events,
    left-padded; an unknown token a zero vector with the presence channel set.
    """
    idx = np.arange(len(cols.persons)) if persons is None else np.asarray(persons, dtype=np.int64)
    start, end = cols.offsets[idx], cols.offsets[idx + 1]
    take = np.minimum(end - start, length)
    first = end - take
    n, dim = len(idx), embedding.dim
    out = np.zeros((n, length, dim + EXTRA_CHANNELS), dtype=np.float32)
    total = int(take.sum())
    if total == 0:
        return out
    # Flat positions: for each person its last `take` events, and the matrix rows they fill.
    owner = np.repeat(np.arange(n), take)
    step = np.arange(total) - np.repeat(np.cumsum(take) - take, take)
    event = np.repeat(first, take) + step
    row = np.repeat(length - take, take) + step
    lookup = np.array([embedding.index.get(t, -1) for t in cols.tokens], dtype=np.int64)
    vec = lookup[cols.token[event]]
    known = vec >= 0
    out[owner[known], row[known], :dim] = embedding.vectors[vec[known]]
    out[owner, row, dim] = 1.0
    last = cols.seconds[np.repeat(end - 1, take)]
    days = np.maximum((last - cols.seconds[event]) / 86_400.0, 0.0)
    out[owner, row, dim + 1] = np.minimum(np.log1p(days) / _MAX_LOG_DAYS, 1.0)
    return out
