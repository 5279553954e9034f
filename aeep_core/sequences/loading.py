"""Sequence folders: recognise them, read their patients, and build pools of patient matrices.

A sequence folder holds, at its top level, any of:
* ``*.jsonl`` files (one patient a line) and long CSVs (``patient_id,time,code[,text,type]``);
  files whose name starts with ``test`` form the test set, like MNIST's t10k files;
* a Synthea CSV export (``patients.csv`` + event tables), or sub-folders that are exports
  (patients found in several exports are merged);
* an OMOP CDM folder (``person`` + event tables, CSV or Parquet, see :mod:`.omop`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from aeep_core.pool import UNKNOWN, DataError, Dataset, Pool, SkippedFile
from aeep_core.sequences.embedding import EventEmbedding, event_token, train_event_embedding
from aeep_core.sequences.matrix import choose_length, patient_matrices
from aeep_core.sequences.omop import is_omop_folder, read_omop
from aeep_core.sequences.readers import (
    PatientRecord,
    is_long_csv,
    is_synthea_export,
    merge_records,
    read_jsonl,
    read_long_csv,
    read_synthea_export,
)

Reader = Callable[[Path], tuple[list[PatientRecord], list[SkippedFile]]]


def _is_test_name(path: Path) -> bool:
    return path.name.lower().startswith("test")


def _event_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and (p.suffix.lower() == ".jsonl" or is_long_csv(p)))


def synthea_exports(folder: Path) -> list[Path]:
    """``folder`` itself if it is a Synthea export, else its sub-folders that are (sorted)."""
    if is_synthea_export(folder):
        return [folder]
    return sorted(d for d in folder.iterdir() if d.is_dir() and is_synthea_export(d))


def looks_like_sequences(folder: Path | str) -> bool:
    """Whether ``folder`` holds patient event sequences (JSONL, long CSV, Synthea export[s] or OMOP)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    return bool(_event_files(folder) or synthea_exports(folder) or is_omop_folder(folder))


def read_records(source: Path | str) -> tuple[list[PatientRecord], list[PatientRecord], list[SkippedFile]]:
    """All patients of a sequence folder (or one JSONL/CSV file): (pool, test, skipped)."""
    source = Path(source)
    skipped: list[SkippedFile] = []
    pool_groups: list[list[PatientRecord]] = []
    test_groups: list[list[PatientRecord]] = []
    files = [source] if source.is_file() else _event_files(source)
    for f in files:
        reader: Reader = read_jsonl if f.suffix.lower() == ".jsonl" else read_long_csv
        recs, skip = reader(f)
        skipped += skip
        (test_groups if _is_test_name(f) and source.is_dir() else pool_groups).append(recs)
    if source.is_dir():
        for export in synthea_exports(source):
            try:
                recs, skip = read_synthea_export(export)
            except DataError as exc:  # one broken export must not sink the others
                skipped.append(SkippedFile(str(export), str(exc)))
                continue
            skipped += skip
            pool_groups.append(recs)
        if is_omop_folder(source):  # the user's own extract: a bad row is an error, not a skip
            recs, skip = read_omop(source)
            skipped += skip
            pool_groups.append(recs)
    pool, _ = merge_records(pool_groups)
    test, _ = merge_records(test_groups)
    if not pool:
        raise DataError(
            f"{source}: no patients found; give *.jsonl (one patient a line), a long CSV "
            "patient_id,time,code, a Synthea export with patients.csv, or OMOP person + event tables"
        )
    return pool, test, skipped


def class_names_of(*groups: list[PatientRecord]) -> list[str]:
    """Sorted distinct labels of the records (numbers sort numerically: "0" < "1" < "10")."""
    labels = {r.label for g in groups for r in g if r.label is not None}
    return sorted(labels, key=lambda s: (0, float(s), s) if _is_number(s) else (1, 0.0, s))


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def records_to_pool(
    records: list[PatientRecord],
    embedding: EventEmbedding,
    length: int,
    class_names: list[str],
    skipped: list[SkippedFile] | None = None,
    root: str = "",
) -> Pool:
    """A sequence :class:`Pool` of patient matrices; ``meta["events"]`` keeps each history for display.

    The events shown are the whole history; the matrix holds the last ``length`` of them.
    ``meta["embedding"]`` is the event embedding the matrices were built with: a model
    export carries it, so new patients get the same vectors.
    """
    index = {n: i for i, n in enumerate(class_names)}
    labels = np.array([index.get(r.label, UNKNOWN) if r.label is not None else UNKNOWN for r in records], dtype=np.int64)
    x = patient_matrices([r.events for r in records], embedding, length)
    return Pool(
        inputs=torch.from_numpy(x),
        names=[r.id for r in records],
        class_names=list(class_names),
        labels=labels if (labels >= 0).any() else None,
        modality="sequence",
        skipped=list(skipped or []),
        meta={
            "root": root,
            "events": [r.events for r in records],
            "sources": [r.source for r in records],
            "length": length,
            "embedding": embedding,
        },
    )


def build_dataset(
    pool_records: list[PatientRecord],
    test_records: list[PatientRecord] | None = None,
    seed: int = 0,
    dim: int = 32,
    length: int | None = None,
    skipped: list[SkippedFile] | None = None,
    root: str = "",
    class_names: list[str] | None = None,
) -> Dataset:
    """Train the event embedding on the pool's histories (only), choose T, build pool and test."""
    test_records = test_records or []
    embedding = train_event_embedding([[event_token(e) for e in r.events] for r in pool_records], dim=dim, seed=seed)
    t = length or choose_length([len(r.events) for r in pool_records])
    names = class_names or class_names_of(pool_records, test_records)
    pool = records_to_pool(pool_records, embedding, t, names, skipped, root)
    test = records_to_pool(test_records, embedding, t, names, root=root) if test_records else None
    if test is not None and test.labels is None:
        raise DataError(f'{root}: the test files have no labels; add "label" to each test patient')
    return Dataset(pool, test)


def split_records(records: list[PatientRecord], fraction: float, seed: int) -> tuple[list[PatientRecord], list[PatientRecord]]:
    """Stratified (by label) split into (pool, test), reproducible under ``seed``."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"--test-split must be between 0 and 1, got {fraction}")
    if any(r.label is None for r in records):
        raise DataError('--test-split needs a label on every patient ("label" in JSONL, a label column in CSV)')
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(records), dtype=bool)
    labels = np.array([r.label for r in records])
    for c in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        is_test[members[: max(1, int(round(fraction * len(members))))]] = True
    return [r for r, t in zip(records, is_test) if not t], [r for r, t in zip(records, is_test) if t]


def load_sequence_dataset(
    data: Path | str, test: Path | str | None = None, test_split: float | None = None, seed: int = 0
) -> Dataset:
    """Load a sequence folder: its pool, and a test set from ``test``, ``test*`` files, or ``test_split``."""
    folder = Path(data).expanduser()
    pool_recs, test_recs, skipped = read_records(folder)
    if test is not None:
        extra_pool, extra_test, skip = read_records(Path(test).expanduser())
        test_recs, skipped = extra_pool + extra_test, skipped + skip
    elif test_split:
        # Split before training the embedding, so test histories never shape it.
        pool_recs, test_recs = split_records(pool_recs, test_split, seed)
    return build_dataset(pool_recs, test_recs, seed=seed, skipped=skipped, root=str(folder.resolve()))


def load_sequence_folder(folder: Path | str) -> Pool:
    """The pool of a sequence folder (patient matrices, histories in ``meta["events"]``)."""
    return load_sequence_dataset(folder).pool
