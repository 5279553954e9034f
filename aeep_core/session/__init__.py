"""A labelling session over a project store: settings, the batch on screen, the engine."""

from aeep_core.learning.learner import SKIPPED
from aeep_core.session.review import HistoryEntry, ReviewItem
from aeep_core.session.session import LabellingSession
from aeep_core.session.types import Batch, BatchItem, ProjectSettings, SessionStats
from aeep_core.store import ProjectLocked, StoreError
from aeep_core.store.items import Drift

__all__ = [
    "SKIPPED",
    "ProjectSettings",
    "BatchItem",
    "Batch",
    "SessionStats",
    "LabellingSession",
    "ReviewItem",
    "HistoryEntry",
    "ProjectLocked",
    "StoreError",
    "Drift",
]
