"""AEEP and its fixed-m version EE: exploration + exploitation in the learned space."""

from __future__ import annotations

from typing import Any

import numpy as np

from aeep_core.strategies.base import QueryContext, QueryStrategy, Selection, unit_rows
from aeep_core.strategies.greedy import farthest_first, informative_diverse


class ExplorationExploitation(QueryStrategy):
    """EE: ``m`` picks by farthest-first exploration, ``k - m`` by entropy minus redundancy.

    ``space="pixels"`` measures similarity on raw inputs instead of the learned
    embedding (an ablation that isolates what the pairwise training brings).
    """

    name = "ee"
    needs_labelled = True

    def __init__(self, m_fraction: float = 0.5, beta: float = 1.0, space: str = "learned"):
        self.m_fraction, self.beta, self.space = m_fraction, beta, space
        self._m: float | None = None
        self._k: int | None = None

    @property
    def m(self) -> int | None:
        return None if self._m is None else int(round(self._m))

    def _start_m(self, k: int) -> float:
        return max(1.0, min(float(k), self.m_fraction * k))

    def query(self, ctx: QueryContext, k: int) -> Selection:
        if self._m is None or self._k != k:
            self._m, self._k = self._start_m(k), k
        k = min(k, len(ctx.candidates))
        m = min(k, max(1, int(round(self._m))))
        if self.space == "pixels":
            cand, known = ctx.input_rows
            unit, known_unit = unit_rows(cand), unit_rows(known)
        else:
            unit, known_unit = ctx.unit, ctx.labelled_unit
        explore = farthest_first(unit, known_unit, m)
        exploit = informative_diverse(unit, ctx.entropy, k - len(explore), self.beta, chosen=explore)
        return Selection.of(explore + exploit, n_explore=len(explore))

    def state_dict(self) -> dict[str, Any]:
        return {"m": self._m, "k": self._k}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._m, self._k = state.get("m"), state.get("k")


class AEEP(ExplorationExploitation):
    """EE whose m adapts: after each batch, m moves toward ``k * (1 - mp)`` with smoothing
    ``rate``, mp being the share of exploration picks the model predicted right before
    they were labelled. Starts exploration-heavy (``m_fraction`` of k); m stays >= 1 so
    the test that drives it always exists."""

    name = "aeep"

    def __init__(self, m_fraction: float = 0.75, beta: float = 1.0, rate: float = 0.5, space: str = "learned"):
        super().__init__(m_fraction=m_fraction, beta=beta, space=space)
        self.rate = rate
        self.history: list[tuple[int, float | None]] = []

    def observe(self, mp: float | None) -> None:
        if self._m is None or self._k is None:
            return
        self.history.append((self.m or 0, mp))
        if mp is None:
            return
        target = self._k * (1.0 - float(np.clip(mp, 0.0, 1.0)))
        self._m = float(np.clip((1 - self.rate) * self._m + self.rate * target, 1.0, self._k))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = [tuple(h) for h in state.get("history", [])]
