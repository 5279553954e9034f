"""The DuckDB Synthea reader returns exactly what the row-by-row reader does."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("duckdb", reason="columnar ingestion needs the duckdb package (pip install 'duckdb>=1.1')")

from aeep_core.sequences.readers import read_synthea_export  # noqa: E402
from aeep_core.sequences.synthea_columnar import read_synthea_columnar  # noqa: E402
from tests.sequences_fixtures import patient_events, write_synthea_export  # noqa: E402


@pytest.mark.parametrize("old_layout", [False, True])
def test_columnar_synthea_reader_matches_the_row_reader(tmp_path, old_layout):
    rng = np.random.default_rng(3)
    pats = {f"p{i}": {"birth": "1980-02-03", "events": patient_events("sick" if i % 2 else "well", rng)} for i in range(8)}
    folder = write_synthea_export(tmp_path / "x", pats, old_layout=old_layout)
    with (folder / "conditions.csv").open("a") as fh:  # a truncated row, a bad time, an unknown patient
        fh.write("2010-01-01\nnot-a-date,,p1,enc,http://snomed.info/sct,123,Bad\n" if not old_layout else
                 "2010-01-01\nnot-a-date,,p1,enc,123,Bad\n")
        fh.write("2010-01-01,,ghost,enc,http://snomed.info/sct,1,X\n" if not old_layout else "2010-01-01,,ghost,enc,1,X\n")
    rows, rows_skipped = read_synthea_export(folder)
    cols, cols_skipped = read_synthea_columnar(folder)
    assert [(r.id, r.birthdate, r.events) for r in sorted(rows, key=lambda r: r.id)] == \
        [(r.id, r.birthdate, r.events) for r in sorted(cols, key=lambda r: r.id)]
    assert any("2 rows left out" in s.reason for s in cols_skipped)
    assert any("1 rows name patients not in patients.csv" in s.reason for s in cols_skipped)
    assert len(rows_skipped) == len(cols_skipped)
