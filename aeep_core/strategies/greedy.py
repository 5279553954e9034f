"""The two greedy selections AEEP is made of, vectorised over the candidates."""

from __future__ import annotations

import numpy as np


def farthest_first(unit: np.ndarray, known_unit: np.ndarray, n: int, taken: np.ndarray | None = None) -> list[int]:
    """Exploration: repeatedly add the candidate whose highest similarity to
    L ∪ S is lowest (farthest-first traversal in the learned space)."""
    closest = (unit @ known_unit.T).max(axis=1) if len(known_unit) else np.full(len(unit), -np.inf)
    closest = closest.astype(np.float64)
    blocked = np.zeros(len(unit), dtype=bool) if taken is None else taken.copy()
    picks: list[int] = []
    for _ in range(min(n, int((~blocked).sum()))):
        i = int(np.argmin(np.where(blocked, np.inf, closest)))
        picks.append(i)
        blocked[i] = True
        np.maximum(closest, unit @ unit[i], out=closest)
    return picks


def informative_diverse(unit: np.ndarray, entropy: np.ndarray, n: int, beta: float, chosen: list[int] | None = None) -> list[int]:
    """Exploitation: repeatedly add the candidate maximising
    H(x) - beta * mean_{s in S} sim(x, s), S being the batch so far (``chosen`` included)."""
    chosen = list(chosen or [])
    blocked = np.zeros(len(unit), dtype=bool)
    blocked[chosen] = True
    sim_sum = unit @ unit[chosen].sum(axis=0) if chosen else np.zeros(len(unit))
    picks: list[int] = []
    for _ in range(min(n, int((~blocked).sum()))):
        size = len(chosen) + len(picks)
        gain = entropy - beta * (sim_sum / size if size else 0.0)
        i = int(np.argmax(np.where(blocked, -np.inf, gain)))
        picks.append(i)
        blocked[i] = True
        sim_sum += unit @ unit[i]
    return picks
