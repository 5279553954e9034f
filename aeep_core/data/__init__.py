"""Loading data into a :class:`~aeep_core.data.pool.Pool`."""

from aeep_core.data.pool import DataError, Pool, SkippedFile
from aeep_core.data.loading import load_pool, load_dataset, Dataset

__all__ = ["DataError", "Pool", "SkippedFile", "load_pool", "load_dataset", "Dataset"]
