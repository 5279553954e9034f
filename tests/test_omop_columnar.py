"""The columnar OMOP reader and numpy patient matrices equal the record reader and patient_matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("duckdb", reason="OMOP import needs the duckdb package (pip install 'duckdb>=1.1')")
pytest.importorskip("gensim", reason="the event embedding needs gensim")

from aeep_core.sequences.columnar import matrices, read_omop_columns  # noqa: E402
from aeep_core.sequences.embedding import EventEmbedding, event_token, train_event_embedding  # noqa: E402
from aeep_core.sequences.matrix import patient_matrices  # noqa: E402
from aeep_core.sequences.omop import read_omop  # noqa: E402
from tests.omop_fixtures import event_row, person_row, write_omop  # noqa: E402

OMOP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omop" / "synthea27nj"


def _same(folder: Path, length: int, embedding: EventEmbedding | None = None) -> None:
    records, _ = read_omop(folder)
    cols = read_omop_columns(folder)
    assert cols.persons == [r.id for r in records]
    assert list(cols.sequences()) == [[event_token(e) for e in r.events] for r in records]
    assert cols.rows == sum(len(r.events) for r in records)
    embedding = embedding or train_event_embedding([[event_token(e) for e in r.events] for r in records[:1]], dim=8, seed=0)
    expected = patient_matrices([r.events for r in records], embedding, length)
    np.testing.assert_array_equal(matrices(cols, embedding, length), expected)
    some = np.array([len(records) - 1, 0])
    np.testing.assert_array_equal(matrices(cols, embedding, length, some), expected[some])


@pytest.mark.parametrize("upper,parquet", [(False, False), (True, False), (True, True)])
def test_columns_and_matrices_equal_the_records(tmp_path, upper, parquet):
    # Ties at one instant of one person, an unmapped code, a person unknown to person,
    # events older than T, and a token the embedding never saw (zero vector, presence 1).
    persons = [person_row(p, f"{1950 + p}-01-01") for p in range(1, 6)]
    cond = [
        event_row(
            "condition_occurrence",
            i,
            1 + i % 5,
            f"20{10 + i % 7}-0{1 + i % 9}-15",
            ["320128", "0", "40481087"][i % 3],
            f"s{i % 4}",
        )
        for i in range(1, 40)
    ]
    cond.append(event_row("condition_occurrence", 99, 9, "2012-01-01", "320128", "x"))
    drugs = [event_row("drug_exposure", i, 1 + i % 3, "2013-03-03", "1308216", "29046") for i in range(1, 6)]
    meas = [event_row("measurement", i, 2, "2013-03-03", "3025315", "w", str(60 + i)) for i in range(1, 4)]
    events = {"condition_occurrence": cond, "drug_exposure": drugs, "measurement": meas}
    folder = write_omop(tmp_path / "o", upper=upper, parquet=parquet, persons=persons, events=events)
    _same(folder, length=6)
    _same(folder, length=32)


def test_partial_vocabulary_and_absent_optional_tables(tmp_path):
    folder = write_omop(
        tmp_path / "o",
        concept=False,
        events={"condition_occurrence": [event_row("condition_occurrence", 1, 1, "2010-01-01", "320128", "x")]},
    )
    _same(folder, length=16)


@pytest.mark.integration
@pytest.mark.skipif(not (OMOP / "PERSON.csv").is_file(), reason=f"OMOP sample not present at {OMOP} (../shared/data/omop)")
def test_real_sample_matches():
    _same(OMOP, length=128)
