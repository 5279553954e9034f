"""The per-project SQLite store: schema and migrations, writer lock, items and drift, export.

See :mod:`aeep_core.session.session` for the labelling session built on it.
"""

from aeep_core.store.db import RoundPredictions, Store
from aeep_core.store.errors import ProjectLocked, StoreError
from aeep_core.store.schema import SCHEMA_VERSION

__all__ = ["RoundPredictions", "Store", "StoreError", "ProjectLocked", "SCHEMA_VERSION"]
