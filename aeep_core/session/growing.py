"""Photos joining a session's pool while the rest of the folder is embedded (issue 28).

The background embedder (:class:`~aeep_core.data.progressive.BackgroundEmbedding`) stores
chunks in a child process; for each, a thread of this process gives the new photos their
item ids in the project store (content-hashed, as every item is) and keeps them ready.
The session takes them into the pool between batches (:meth:`GrowingPool.take`): the
positions already handed out never move, and a round's candidates are drawn from every
photo embedded by then, in the folder's seeded random order, an unbiased sample of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from aeep_core.data.progressive import BackgroundEmbedding, EmbeddingProgress, Unembedded
from aeep_core.pool import Pool, SkippedFile
from aeep_core.store import Store
from aeep_core.store.items import add_items


class GrowingPool:
    """What of a photo folder is still being embedded, handed over chunk by chunk."""

    def __init__(self, store: Store, pending: Unembedded, embedded: int, class_names: Callable[[], list[str]]):
        self._store, self._pending, self._class_names = store, pending, class_names
        self._ready: list[tuple[Pool, list[int]]] = []
        self._lock = threading.Lock()
        self.embedding = BackgroundEmbedding(pending, self._arrived, embedded)

    def _arrived(self, positions: list[int], skipped: list[SkippedFile]) -> None:
        """In the embedding thread: the photos of a stored chunk, made ready to join."""
        p = self._pending
        part = p.listing.part(positions, p.store, self._class_names(), p.backbone)
        part.skipped = skipped
        ids = add_items(self._store, part) if positions else []
        with self._lock:
            self._ready.append((part, ids))

    def take(self) -> list[tuple[Pool, list[int]]]:
        """The photos embedded since the last call (each part with its item ids)."""
        with self._lock:
            ready, self._ready = self._ready, []
        return ready

    @property
    def finished(self) -> bool:
        """Every photo is embedded and taken."""
        with self._lock:
            return self.embedding.finished and not self._ready

    def progress(self) -> EmbeddingProgress:
        return self.embedding.progress()

    def close(self) -> None:
        self.embedding.close()
