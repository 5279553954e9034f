"""Query strategies: AEEP and the baselines, one small class each."""

from __future__ import annotations

from aeep_core.strategies.aeep import AEEP, AEEPPaper, ExplorationExploitation
from aeep_core.strategies.base import QueryContext, QueryStrategy, Selection
from aeep_core.strategies.imbalance import BalancedSelection, ClassBalancedEntropy, Galaxy
from aeep_core.strategies.modern import Badge, BatchModeFisher, CoreSet
from aeep_core.strategies.simple import EntropyMaximisation, KFarthestFirst, RandomSampling

STRATEGIES: dict[str, type[QueryStrategy]] = {
    cls.name: cls
    for cls in (
        AEEP,
        AEEPPaper,
        ExplorationExploitation,
        RandomSampling,
        EntropyMaximisation,
        KFarthestFirst,
        BatchModeFisher,
        CoreSet,
        Badge,
        BalancedSelection,
        Galaxy,
        ClassBalancedEntropy,
    )
}


def make_strategy(name: str, **options) -> QueryStrategy:
    """Build a strategy by name (``aeep``, ``aeep-paper``, ``ee``, ``random``, ``em``, ``kff``, ``bmal``,
    ``coreset``, ``badge``, and for class imbalance ``base``, ``galaxy``, ``balanced-em``); raise
    ValueError naming the choices otherwise."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}") from None
    return cls(**options)


__all__ = ["STRATEGIES", "make_strategy", "QueryContext", "QueryStrategy", "Selection"]
