"""A photo folder that joins its pool as it is embedded: the first batch in seconds.

Embedding every photo before the first question took 31 s for 1,500 flowers and would take
hours for 10^5-10^6 photos (issue 28). A project of a photo folder instead:

1. lists the files and puts them in a seeded random order (:func:`seeded_order`), so any
   prefix of that order is an unbiased sample of the folder;
2. embeds the first :data:`FIRST_SLICE` photos still missing from the feature store, in
   the opening process, and makes the pool of every photo embedded so far
   (:func:`load_growing_photos`);
3. embeds the rest in the background, in a child process (:class:`BackgroundEmbedding`,
   niced, so the UI and the trainer keep their cores), one durable chunk at a time. The
   session takes the new photos into the pool between batches.

The pool's inputs are rows of the feature store read from disk when trained on or scored
(:class:`~aeep_core.data.feature_store.StoreRows`), so memory stays bounded. Quitting or a
``kill -9`` loses at most the chunk in flight: the next open finds the rest in the store.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

import numpy as np
import torch

from aeep_core import locations
from aeep_core.data.feature_store import FeatureStore, StoreError, StoreRows
from aeep_core.data.features import CHUNK, Progress, embed_into_store, file_key, open_feature_store, open_or_create_store
from aeep_core.pool import UNKNOWN, DataError, Pool, SkippedFile
from aeep_core.processes import Emit, ServiceCrashed, ServiceProcess, child_threads

PathLike = TypeVar("PathLike", str, Path)
#: photos embedded before the first batch: one chunk (about 4 s with ONNX Runtime on 2 cores)
FIRST_SLICE = CHUNK
_RESTARTS = 3  # an embedder that dies is started again this often, then left stopped


def seeded_order(root: Path, paths: Sequence[PathLike], seed: int) -> list[PathLike]:
    """``paths`` in a random order fixed by ``seed`` and each file's path below ``root``
    (not by the listing's order: a file added later takes its own place, moving no other)."""
    return [paths[i] for i in _seeded_positions(_relative(root, paths), seed)]


def _relative(root: Path, paths: Sequence[str | Path]) -> list[str]:
    """Each path below ``root`` as a string (string slicing: ``relative_to`` costs
    seconds at 10^6 files)."""
    cut = len(str(root).rstrip(os.sep)) + 1
    return [str(p)[cut:] for p in paths]


def _seeded_positions(relative: list[str], seed: int) -> list[int]:
    salt = str(seed).encode() + b"\0"
    ranks = [hashlib.blake2b(salt + os.fsencode(r), digest_size=8).digest() for r in relative]
    return sorted(range(len(relative)), key=ranks.__getitem__)


@dataclass
class PhotoListing:
    """Every photo of a folder, in the project's seeded order, with its feature-store key
    and its class folder (``DIR/cat/x.jpg`` is a cat; files directly in DIR have none)."""

    root: Path
    paths: list[str]
    relative: list[str]  # each path below root: the pool's item names
    keys: list[str]
    folders: list[str | None]

    @classmethod
    def of(cls, root: Path, paths: Sequence[str], seed: int) -> PhotoListing:
        relative = _relative(root, paths)
        order = _seeded_positions(relative, seed)
        ordered = [paths[i] for i in order]
        names = [relative[i] for i in order]
        folders = [n.split(os.sep, 1)[0] if os.sep in n else None for n in names]
        return cls(root, ordered, names, [file_key(p) for p in ordered], folders)

    def __len__(self) -> int:
        return len(self.paths)

    def part(self, positions: list[int], store: FeatureStore, class_names: list[str], backbone: str) -> Pool:
        """The photos at ``positions`` (each with a stored row) as a pool whose inputs are
        read from ``store``; ground truth from folders named like one of ``class_names``."""
        rows = store.rows_for([self.keys[i] for i in positions])
        index = {n: c for c, n in enumerate(class_names)}
        labels = np.array([index.get(self.folders[i] or "", UNKNOWN) for i in positions], dtype=np.int64)
        root = str(self.root.resolve())
        return Pool(
            inputs=cast(torch.Tensor, StoreRows(store, rows)),  # a tensor's interface, read from disk
            names=[self.relative[i] for i in positions],
            class_names=list(class_names),
            labels=labels if (labels >= 0).any() else None,
            modality="features",
            # random_order: positions follow the seeded order, so a run of them is a random
            # sample (ActiveLearner draws candidates so, reading the store sequentially)
            meta={
                "root": root,
                "paths": [os.path.join(root, self.relative[i]) for i in positions],
                "backbone": backbone,
                "random_order": True,
            },
        )


@dataclass
class Unembedded:
    """What of a photo folder is still to embed: the listing and its positions, in order."""

    listing: PhotoListing
    todo: list[int]
    stem: Path
    backbone: str
    store: FeatureStore  # read-only: the one the pool's rows are read from


def load_growing_photos(
    folder: Path, paths: Sequence[str], backbone: str, seed: int, progress: Progress | None = None, embed: bool = True
) -> tuple[Pool, Unembedded | None]:
    """The pool of every photo of ``folder`` embedded so far (after embedding the first
    :data:`FIRST_SLICE` still missing when ``embed``), and what is left to embed (None
    when nothing is). Undecodable photos are listed in ``pool.skipped``."""
    listing = PhotoListing.of(folder, paths, seed)
    stem = locations.feature_cache(folder, backbone)
    if embed:
        try:
            writer, _ = open_or_create_store(stem, backbone, listing.keys, "cpu")
        except StoreError:  # another process is writing it (aeep-tui embed): go on with what it has
            return _embedded_so_far(folder, listing, stem, backbone)
        try:
            missing = np.flatnonzero(writer.rows_for(listing.keys) < 0)[:FIRST_SLICE]
            embed_into_store(
                [listing.paths[i] for i in missing], writer, backbone, progress=progress, keys=[listing.keys[i] for i in missing]
            )
        finally:
            writer.close()
    return _embedded_so_far(folder, listing, stem, backbone)


def _embedded_so_far(folder: Path, listing: PhotoListing, stem: Path, backbone: str) -> tuple[Pool, Unembedded | None]:
    try:
        store = open_feature_store(stem, backbone, writable=False)
    except DataError:
        raise DataError(
            f"{folder}: no photo embedded yet; open it for labelling once (aeep-tui label) or run aeep-tui embed"
        ) from None
    rows = store.rows_for(listing.keys)
    bad = store.skipped()
    have = np.flatnonzero(rows >= 0).tolist()
    todo = [i for i in np.flatnonzero(rows < 0).tolist() if listing.keys[i] not in bad]
    if not have and todo:
        raise DataError(f"{folder}: no photo embedded yet; open it for labelling (aeep-tui label) or run aeep-tui embed on it")
    if not have:
        raise DataError(f"{folder}: none of the {len(listing)} images could be decoded; replace or remove the broken files")
    pool = listing.part(have, store, sorted({f for f in listing.folders if f is not None}), backbone)
    pool.skipped = [
        SkippedFile(str(listing.paths[i]), bad[listing.keys[i]]) for i in range(len(listing)) if listing.keys[i] in bad
    ]
    return pool, (Unembedded(listing, todo, stem, backbone, store) if todo else None)


# --- the background embedder ------------------------------------------------------------
class _EmbedService:
    """In the child: embeds the photos it is given into the store, one chunk at a time."""

    def __init__(self, emit: Emit, stem: str, backbone: str, threads: int):
        try:
            os.nice(10)  # the UI and the trainer come first; embedding takes what is left
        except OSError:
            pass
        child_threads(threads)
        self.emit, self.stem, self.backbone = emit, Path(stem), backbone

    def embed(self, paths: list[str], keys: list[str]) -> None:
        parent = multiprocessing.parent_process()
        store = open_feature_store(self.stem, self.backbone, writable=True)
        try:
            embed_into_store(
                paths,
                store,
                self.backbone,
                progress=lambda done, total: self.emit(("embedded", done, total)),
                should_stop=lambda: parent is not None and not parent.is_alive(),
                keys=keys,
            )
        finally:
            store.close()


@dataclass
class EmbeddingProgress:
    """How far background embedding is: photos in the pool of the folder's total, the
    rate since it started in this session, and the seconds left at that rate."""

    embedded: int
    total: int
    per_second: float | None
    seconds_left: float | None
    failure: str | None = None  # why it stopped early (the embedder died too often)


@dataclass
class BackgroundEmbedding:
    """Embeds ``pending.todo`` in a child process; ``arrived(positions)`` is called (in a
    thread of this process, never the UI's) with the listing positions of each stored
    chunk, in order. An embedder that dies is started again where it stopped."""

    pending: Unembedded
    arrived: Callable[[list[int], list[SkippedFile]], None]
    embedded: int  # photos of the folder in the store (undecodable ones not counted)
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)

    def __post_init__(self) -> None:
        self._done = 0  # todo positions handled (stored or undecodable)
        self._started = time.monotonic()
        self._stored = 0
        self._failure: str | None = None
        self._restarts = 0
        self._closed = threading.Event()
        self._process: ServiceProcess | None = None
        self._start()
        self._thread = threading.Thread(target=self._feed, name="aeep-embedding", daemon=True)
        self._thread.start()

    @property
    def finished(self) -> bool:
        """Nothing more will be stored: every photo is handled, or embedding gave up."""
        return self._done >= len(self.pending.todo) or self._failure is not None

    def progress(self) -> EmbeddingProgress:
        left = len(self.pending.todo) - self._done
        rate = self._stored / (time.monotonic() - self._started) if self._stored else None
        return EmbeddingProgress(self.embedded, self.embedded + left, rate, None if not rate else left / rate, self._failure)

    def _start(self) -> None:
        todo = self.pending.todo[self._done :]
        self._process = ServiceProcess(
            _EmbedService, str(self.pending.stem), self.pending.backbone, self.threads, name="aeep-embedder"
        ).start()
        self._process.send("embed", [self.pending.listing.paths[i] for i in todo], [self.pending.listing.keys[i] for i in todo])
        self._offset = self._done  # the child counts from here

    def _feed(self) -> None:
        while not self._closed.is_set() and not self.finished:
            process = self._process  # close() may drop it meanwhile
            if process is None:
                return
            try:
                events = process.events(timeout=0.5)
            except ServiceCrashed as crash:
                self._restart(str(crash).splitlines()[0])
                continue
            for event in events:
                if event[0] == "embedded":
                    self._take(self._offset + int(event[1]))
        if self.finished and self._process is not None:
            self._process.stop(timeout=5.0)  # frees the embedder's memory
            self._process = None

    def _take(self, done: int) -> None:
        """Hand over the todo positions the child has handled up to ``done``."""
        if done <= self._done:
            return
        positions = self.pending.todo[self._done : done]
        store, keys = self.pending.store, self.pending.listing.keys
        store.refresh()
        rows = store.rows_for([keys[i] for i in positions])
        stored = [i for i, r in zip(positions, rows.tolist()) if r >= 0]
        bad = store.skipped() if len(stored) < len(positions) else {}
        skipped = [
            SkippedFile(str(self.pending.listing.paths[i]), bad.get(keys[i], "cannot decode image"))
            for i, r in zip(positions, rows.tolist())
            if r < 0
        ]
        self.arrived(stored, skipped)  # before the counts: finished never precedes the photos
        self._stored += len(stored)
        self.embedded += len(stored)
        self._done = done

    def _restart(self, why: str) -> None:
        if self._process is not None:
            self._process.stop(timeout=1.0)
            self._process = None
        self._restarts += 1
        if self._restarts > _RESTARTS:
            self._failure = f"embedding stopped: {why}"
            self._closed.set()
            return
        # A moment for whatever held the store (a writer whose app was killed) to end.
        if not self._closed.wait(2.0 * self._restarts):
            self._start()

    def close(self) -> None:
        """Stop embedding now (the chunk in flight is lost; the next open goes on from the store)."""
        self._closed.set()
        if self._process is not None:
            self._process.stop(timeout=0.5)
            self._process = None
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
