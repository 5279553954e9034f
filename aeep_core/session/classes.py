"""Classes met while labelling: add, rename and merge them in a running project.

``session.classes`` holds the project's class list as it is now (:attr:`ProjectClasses.current`,
read by every part that names a class: keys, cards, review, stats, exports) and makes the
three changes. Each is committed to the store before it returns, so a crash right after
loses nothing:

* **add** — the class takes the next index; the pool gets its name, and the model its
  output when it next trains (plain) or at the class's first answer (pipelined;
  :mod:`aeep_core.learning.class_outputs`). It can be answered at once, on the open batch.
* **rename** — only the name changes: answers point at the index.
* **merge** — every current answer of one class is re-pointed to another by a new answer
  row (a correction for a confirmed batch, handed to the engine like one from review; an
  answer for the open batch, as if the person had pressed the other key), and the class
  is marked merged: its key is free, its index never reused, its output kept but masked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aeep_core.pool import Pool
from aeep_core.session.engines import Engine
from aeep_core.store import Store
from aeep_core.store.classes import ClassList, ProjectClass, Repointed, add_class, merge_class, read_classes, rename_class

#: what the session does with an answer of its open batch that a merge re-pointed
Reanswer = Callable[[Repointed, int], None]


class ProjectClasses:
    """The classes of one session's project (``session.classes``)."""

    def __init__(self, store: Store, pools: Sequence[Pool], engine: Engine, index: dict[int, int], reanswer: Reanswer):
        self._store, self._pools, self._engine = store, pools, engine
        self._index = index  # stored item id -> pool index
        self._reanswer = reanswer
        self.current: ClassList = read_classes(store)
        engine.learner.merged_classes = self.current.merged

    def add(self, name: str, key: str) -> ProjectClass:
        """A new class called ``name`` on ``key``; ValueError when a live class already has
        either. Usable at once: the open batch may be answered with it."""
        added = add_class(self._store, name, key)
        for pool in self._pools:
            pool.add_class(added.name)
        self.current = read_classes(self._store)
        self._engine.classes_changed()
        return added

    def rename(self, index: int, name: str) -> None:
        """Call class ``index`` ``name`` from now on; every answer stays on it."""
        rename_class(self._store, index, name)
        self.current = read_classes(self._store)
        for pool in self._pools:
            pool.class_names[index] = self.current[index].name

    def merge(self, source: int, target: int) -> int:
        """Merge class ``source`` into ``target``: every answer of ``source`` becomes one of
        ``target`` (the history keeps the old answers), and ``source`` is never offered
        nor predicted again. Returns how many answers moved."""
        moved: list[Repointed] = []

        def save() -> list[tuple[int, int]]:
            moved.extend(merge_class(self._store, source, target))
            return [(self._index[m.item_id], target) for m in moved if m.confirmed and m.item_id in self._index]

        # Under the engine's lock, as a correction from review: no trainer reads the log half-way.
        self._engine.correct_many(save)
        self.current = read_classes(self._store)
        self._engine.learner.merged_classes = self.current.merged
        self._engine.classes_changed()
        for m in moved:
            if not m.confirmed:
                self._reanswer(m, target)
        return len(moved)
