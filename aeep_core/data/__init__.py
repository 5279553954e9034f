"""Loading data into a :class:`~aeep_core.pool.Pool`."""

from aeep_core.data.loading import load_dataset, load_pool
from aeep_core.pool import DataError, Dataset, Pool, SkippedFile

__all__ = ["DataError", "Pool", "SkippedFile", "load_pool", "load_dataset", "Dataset"]
