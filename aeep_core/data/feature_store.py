"""A feature store on disk: one row per item, appended chunk by chunk, memory-mapped.

Why a raw memmap with a small index, not Zarr or Lance: the store is only ever appended to
by one writer, read by row number, and holds one fixed-width dtype. A flat file of rows is
exactly what ``np.memmap`` and ``os.pread`` read without copies, it needs no dependency,
and a torn tail is easy to detect with one checksum per chunk. Zarr would add chunk files
and a metadata layer for nothing we use (compression does not shrink float features much);
Lance would add a large dependency whose strengths (columns, versions, vector indexes)
this store does not need.

Files of a store share one stem (so ``locations.image_caches`` finds them):

- ``<stem>.meta.json`` — dtype, width, and what made the rows (backbone, version), written
  once, atomically, when the store is created.
- ``<stem>.rows`` — the rows, ``dim`` values of ``dtype`` each, back to back.
- ``<stem>.index`` — one record per appended chunk: its rows' position, count, a CRC of
  their bytes, and their keys; each record ends with a CRC of itself.
- ``<stem>.lock`` — held (``flock``) by the one process that may append.
- ``<stem>.skipped`` — keys of files that could not be made into rows, one JSON line
  each with the reason, so they are not retried at every open (a torn last line is ignored).

Durability: a chunk's rows are written and fsynced *before* its index record, and the
record is fsynced before :meth:`FeatureStore.append` returns. So a ``kill -9`` (or a
power cut) loses at most the chunk in flight: on open, the index is read up to the first
incomplete or corrupt record, the last chunk's rows are checked against their CRC, and
anything after the last good chunk is ignored (and cut off by the next writer) — a torn
tail is never trusted.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aeep_core.pool import DataError

__all__ = ["FeatureStore", "StoreError", "StoreRows", "open_store"]

_MAGIC = b"AFS1"
_HEADER = struct.Struct("<4sQIII")  # magic, first row, rows, CRC of the rows' bytes, key bytes
_TRAILER = struct.Struct("<I")  # CRC of header + keys
_FORMAT = "aeep-feature-store"
_VERSION = 1


class StoreError(DataError, ValueError):
    """A store that cannot be opened as asked (another writer, another width or backbone):
    a :class:`DataError`, so commands print its one line."""


@dataclass
class _Files:
    stem: Path

    def __post_init__(self) -> None:
        self.meta = Path(f"{self.stem}.meta.json")
        self.rows = Path(f"{self.stem}.rows")
        self.index = Path(f"{self.stem}.index")
        self.lock = Path(f"{self.stem}.lock")
        self.skipped = Path(f"{self.stem}.skipped")


@dataclass
class FeatureStore:
    """An append-only table of feature rows keyed by strings (see the module doc).

    ``features`` is a read-only ``[len, dim]`` memmap; :meth:`read` copies chosen rows as
    float32 and :meth:`chunks` walks every row in bounded memory. A reader sees the rows
    that were committed when it opened or last called :meth:`refresh`.
    """

    files: _Files
    dim: int
    dtype: np.dtype
    meta: dict[str, Any]
    writable: bool
    _keys: list[str] = field(default_factory=list)
    _row_of: dict[str, int] = field(default_factory=dict)
    _index_end: int = 0  # bytes of the index that hold good records
    _lock_fd: int | None = None
    _view: np.ndarray | None = None

    # --- reading ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> list[str]:
        """The key of each row, in row order (a copy)."""
        return list(self._keys)

    @property
    def row_bytes(self) -> int:
        return self.dim * self.dtype.itemsize

    @property
    def features(self) -> np.ndarray:
        """The committed rows as a read-only ``[len, dim]`` memmap (no copy). Pages it
        touches stay resident while it lives: for random rows of a large store use
        :meth:`read`, for a scan :meth:`chunks`."""
        n = len(self)
        if self._view is None or len(self._view) != n:
            self._view = (
                np.zeros((0, self.dim), self.dtype)
                if n == 0
                else np.memmap(self.files.rows, dtype=self.dtype, mode="r", shape=(n, self.dim))
            )
        return self._view

    def rows_for(self, keys: Sequence[str]) -> np.ndarray:
        """The row of each key (int64), -1 where the store has none."""
        get = self._row_of.get
        return np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    def __contains__(self, key: object) -> bool:
        return key in self._row_of

    def read(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The given rows as float32 ``[len(rows), dim]``, in the order asked.

        Read with ``pread``, one call per run of consecutive rows, not through a mapping:
        random rows of a mapped file fault in their neighbours too (the kernel's
        fault-around), which made 10,000 random rows of a 10^6-row store cost 1 GB of
        resident pages; this costs the result's size."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=self.dtype)
        if len(rows) == 0:
            return out.astype(np.float32)
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"{self.files.rows}: rows outside 0..{len(self) - 1}")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        starts, ends = np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]])
        with open(self.files.rows, "rb", buffering=0) as f:
            for a, b in zip(starts.tolist(), ends.tolist()):
                data = os.pread(f.fileno(), (b - a) * self.row_bytes, int(ordered[a]) * self.row_bytes)
                out[order[a:b]] = np.frombuffer(data, dtype=self.dtype).reshape(b - a, self.dim)
        return out.astype(np.float32)

    def chunks(self, size: int = 65_536, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, float32 block)`` over rows ``start..stop`` in blocks of ``size``,
        read with ``pread`` (nothing stays mapped: memory is one block)."""
        stop = len(self) if stop is None else min(stop, len(self))
        with open(self.files.rows, "rb", buffering=0) as f:
            for first in range(start, stop, size):
                n = min(size, stop - first)
                data = os.pread(f.fileno(), n * self.row_bytes, first * self.row_bytes)
                yield first, np.frombuffer(data, dtype=self.dtype).reshape(n, self.dim).astype(np.float32)

    def refresh(self) -> int:
        """Take in chunks another process committed since this store was opened; returns
        how many rows arrived."""
        before = len(self)
        self._read_index(self._index_end)
        return len(self) - before

    # --- writing ------------------------------------------------------------------
    def append(self, keys: Sequence[str], rows: np.ndarray) -> None:
        """Append one chunk durably (rows fsynced, then its index record fsynced). A key
        appended again points to its newest row."""
        if not self.writable:
            raise StoreError(f"{self.files.stem}: opened read-only; open it with writable=True to append")
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.ndim != 2 or rows.shape[1] != self.dim or rows.shape[0] != len(keys):
            raise ValueError(f"append: {len(keys)} keys and rows of shape {rows.shape}; expected [{len(keys)}, {self.dim}]")
        if not len(keys):
            return
        blob = "\n".join(keys).encode()
        if any("\n" in k for k in keys):
            raise ValueError("append: a key may not contain a newline")
        first = len(self)
        data = rows.tobytes()
        fd = os.open(self.files.rows, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, first * self.row_bytes)
            os.fsync(fd)
        finally:
            os.close(fd)
        header = _HEADER.pack(_MAGIC, first, len(keys), zlib.crc32(data), len(blob))
        record = header + blob + _TRAILER.pack(zlib.crc32(header + blob))
        fd = os.open(self.files.index, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, record, self._index_end)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._index_end += len(record)
        self._add_keys(first, list(keys))

    def skipped(self) -> dict[str, str]:
        """Keys marked with :meth:`mark_skipped`, and why (read from disk each call)."""
        out: dict[str, str] = {}
        try:
            lines = self.files.skipped.read_text().splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            try:
                key, reason = json.loads(line)
            except ValueError:
                continue  # a torn last line
            out[key] = reason
        return out

    def mark_skipped(self, keys: Sequence[str], reasons: Sequence[str]) -> None:
        """Record keys that have no row and should not be retried (undecodable files)."""
        if not self.writable:
            raise StoreError(f"{self.files.stem}: opened read-only; open it with writable=True to mark skipped files")
        if keys:
            with open(self.files.skipped, "a") as f:
                f.writelines(json.dumps([k, r]) + "\n" for k, r in zip(keys, reasons))

    def close(self) -> None:
        """Release the writer's lock (readers hold nothing)."""
        self._view = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the index ----------------------------------------------------------------
    def _add_keys(self, first: int, keys: list[str]) -> None:
        self._keys.extend(keys)
        self._row_of.update(zip(keys, range(first, first + len(keys))))

    def _read_index(self, offset: int) -> None:
        """Read good records from ``offset``; stop at the first torn one (and before a
        last chunk whose rows fail their CRC)."""
        try:
            with open(self.files.index, "rb") as f:  # only what is new: a refresh at 10^6 rows reads kilobytes
                f.seek(offset)
                raw = f.read()
        except FileNotFoundError:
            return
        try:
            rows_size = self.files.rows.stat().st_size
        except FileNotFoundError:
            rows_size = 0
        pos, expected = 0, len(self)
        pending: list[tuple[int, list[str], int]] = []
        while pos + _HEADER.size + _TRAILER.size <= len(raw):
            magic, first, n, data_crc, key_bytes = _HEADER.unpack_from(raw, pos)
            end = pos + _HEADER.size + key_bytes
            if magic != _MAGIC or end + _TRAILER.size > len(raw):
                break
            (crc,) = _TRAILER.unpack_from(raw, end)
            if crc != zlib.crc32(raw[pos:end]) or first != expected:
                break
            if (first + n) * self.row_bytes > rows_size:
                break
            keys = raw[pos + _HEADER.size : end].decode().split("\n") if n else []
            if len(keys) != n:
                break
            pending.append((first, keys, data_crc))
            expected += n
            pos = end + _TRAILER.size
        # Only the newest chunk can be torn (rows are fsynced before their record): check it.
        if pending and not self._rows_match(*pending[-1]):
            pending.pop()
        good = offset
        for first, keys, _ in pending:
            self._add_keys(first, keys)
            good += _HEADER.size + len("\n".join(keys).encode()) + _TRAILER.size
        self._index_end = good

    def _rows_match(self, first: int, keys: list[str], crc: int) -> bool:
        with open(self.files.rows, "rb", buffering=0) as f:
            data = os.pread(f.fileno(), len(keys) * self.row_bytes, first * self.row_bytes)
        return len(data) == len(keys) * self.row_bytes and zlib.crc32(data) == crc

    def _cut_torn_tail(self) -> None:
        """Writer only: drop index bytes and rows past the last good chunk."""
        for path, size in ((self.files.index, self._index_end), (self.files.rows, len(self) * self.row_bytes)):
            if path.exists() and path.stat().st_size != size:
                os.truncate(path, size)


def open_store(
    stem: Path | str,
    dim: int | None = None,
    dtype: str = "float16",
    meta: dict[str, Any] | None = None,
    writable: bool = False,
    wait_for_writer: bool = False,
) -> FeatureStore:
    """Open the store at ``stem`` (files ``<stem>.rows``, ``.index``, ``.meta.json``).

    A missing store is created when ``writable`` and ``dim`` is given. ``meta`` (e.g. the
    backbone and feature version) must match the stored one where both name a field, so
    rows of two definitions never mix. A writable store takes the writer's lock (one
    process at a time: a second gets a :class:`StoreError`, or with ``wait_for_writer``
    waits until the first closes it) and cuts off a torn tail.
    """
    files = _Files(Path(stem))
    meta = dict(meta or {})
    if not files.meta.is_file():
        if not writable or dim is None:
            raise StoreError(f"{files.meta}: no feature store here; embed first (aeep-tui embed DATA)")
        files.meta.parent.mkdir(parents=True, exist_ok=True)
        stored = {"format": _FORMAT, "version": _VERSION, "dim": int(dim), "dtype": np.dtype(dtype).name, **meta}
        tmp = Path(f"{files.meta}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(stored, indent=1))
        os.replace(tmp, files.meta)
    try:
        stored = json.loads(files.meta.read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"{files.meta}: unreadable ({exc}); delete the store's files to rebuild it") from exc
    if stored.get("format") != _FORMAT or stored.get("version") != _VERSION:
        raise StoreError(f"{files.meta}: not a version-{_VERSION} feature store; delete the store's files to rebuild it")
    if dim is not None and stored["dim"] != dim:
        raise StoreError(f"{files.meta}: rows of width {stored['dim']}, asked for {dim}; use another store path")
    clash = {k: (stored.get(k), v) for k, v in meta.items() if k in stored and stored[k] != v}
    if clash:
        raise StoreError(f"{files.meta}: made with {clash} (stored, asked); use another store path")
    store = FeatureStore(files, int(stored["dim"]), np.dtype(stored["dtype"]), stored, writable)
    if writable:
        fd = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait_for_writer else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{files.stem}: another process is writing this feature store; wait for it or stop it") from None
        store._lock_fd = fd
    store._read_index(0)
    if writable:
        store._cut_torn_tail()
    return store


class StoreRows:
    """Store rows as a pool's ``inputs``: ``len``, ``shape`` and indexing by a tensor of
    positions, each read from disk as float32 when asked (``rows[position]`` is the store
    row of pool item ``position``). A learner then holds only the rows it trains on or
    scores, never the whole pool: what keeps a pool of 10^6 photos in bounded memory."""

    dtype = torch.float32

    def __init__(self, store: FeatureStore, rows: np.ndarray | None = None):
        self.store = store
        self.rows = np.arange(len(store), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= len(store)):
            raise ValueError("StoreRows: every position needs a stored row (rows_for gave -1: embed those first)")
        self.shape = torch.Size((len(self.rows), store.dim))

    def __len__(self) -> int:
        return len(self.rows)

    def __reduce__(self) -> tuple[Any, ...]:
        # To another process: the store's path and the rows, reopened read-only there
        # (never the writer's lock, nor a copy of 10^6 keys).
        return (_store_rows, (str(self.store.files.stem), self.rows))

    def extended(self, more: StoreRows) -> StoreRows:
        """These positions followed by ``more``'s (rows of the same store, which takes in
        what another process committed meanwhile)."""
        rows = more.rows
        if len(rows) and rows.max() >= len(self.store):
            self.store.refresh()
        return StoreRows(self.store, np.concatenate([self.rows, rows]))

    def __getitem__(self, index: torch.Tensor | np.ndarray | slice | int) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        picked = self.rows[index]
        if np.ndim(picked) == 0:
            return torch.from_numpy(self.store.read([int(picked)])[0])
        return torch.from_numpy(self.store.read(picked))


_READERS: dict[str, FeatureStore] = {}  # stores opened to unpickle rows, one per stem and process


def _store_rows(stem: str, rows: np.ndarray) -> StoreRows:
    """Rows unpickled in another process: one read-only store per stem there, so a pool
    that grows by parts reads its index once, then only what is new."""
    store = _READERS.get(stem)
    if store is None:
        store = _READERS[stem] = open_store(stem)
    elif len(rows) and rows.max() >= len(store):
        store.refresh()
    return StoreRows(store, rows)
