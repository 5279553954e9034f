"""The case-control cut behind every outcome cohort, and the reader of Synthea exports.

A case is a patient with an outcome event (which events count is the caller's ``is_case``;
:mod:`.outcomes` defines them, heart failure among them). The index date is the day of the
first such event and only events strictly before that day are kept, so neither the
diagnosis nor anything recorded on its day (the echo, the furosemide) leaks in.

Controls (label 0, ``control``) are cut at a comparable index date: an age drawn from the
cases' ages at diagnosis, among those the control's record covers (age matching, the usual
case-control design); a control whose record covers no case age keeps its whole history. Without the
cut, controls would carry histories up to the export date and the model could learn "long
recent history = control".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from aeep_core.pool import DataError
from aeep_core.sequences.loading import synthea_exports
from aeep_core.sequences.readers import PatientRecord, merge_records, read_synthea_export


@dataclass
class CohortStats:
    """What the cohort builder found, for the benchmark notes."""

    exports: int = 0
    patients: int = 0  # distinct, after merging ids seen in several exports
    duplicates_merged: int = 0
    cases: int = 0
    controls: int = 0
    dropped_empty: int = 0  # no event before the index date (e.g. HF recorded at the first visit)
    controls_whole_history: int = 0
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _day(iso: str) -> str:
    return iso[:10] + "T00:00:00"


def _age_days(birth: datetime, when: str) -> float:
    return (datetime.fromisoformat(when) - birth).total_seconds() / 86_400.0


def read_exports(data_dir: Path | str) -> tuple[list[PatientRecord], CohortStats]:
    """Every usable Synthea export under ``data_dir`` (or ``data_dir`` itself), patients merged by id."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder; point --data to the Synthea exports (e.g. ../shared/data/ehr)")
    exports = synthea_exports(data_dir)
    if not exports:
        raise DataError(f"{data_dir}: no Synthea export (a folder with patients.csv and conditions.csv) found")
    stats = CohortStats(exports=len(exports))
    groups: list[list[PatientRecord]] = []
    for export in exports:
        try:
            recs, skipped = read_synthea_export(export)
        except DataError as exc:
            stats.skipped.append(str(exc))
            continue
        stats.skipped += [str(s) for s in skipped]
        groups.append(recs)
    records, stats.duplicates_merged = merge_records(groups)
    stats.patients = len(records)
    return records, stats


def build_cohort(
    records: list[PatientRecord],
    seed: int,
    stats: CohortStats | None = None,
    *,
    is_case: Callable[[dict[str, str]], bool],
    class_names: Sequence[str],
    gap_days: float = 0.0,
) -> list[PatientRecord]:
    """Label and cut every patient at its index date (see module doc); drop empty histories.

    ``is_case`` tells an outcome event (see :class:`.outcomes.Outcome`); ``class_names`` is
    ``[control, case]``, the labels given. ``gap_days`` > 0 ends every history that many days before its index
    date, cases and controls alike: the model must predict the outcome that far ahead, not
    spot the work-up that precedes a diagnosis by days.
    """
    stats = stats or CohortStats(patients=len(records))
    gap = timedelta(days=gap_days)
    rng = np.random.default_rng([seed, 88805009])
    cases: list[PatientRecord] = []
    controls: list[PatientRecord] = []
    case_ages: list[float] = []
    for rec in records:
        first = next((e for e in rec.events if is_case(e)), None)
        if first is None:
            controls.append(rec)
            continue
        index = _day(first["time"])
        cut = _day((datetime.fromisoformat(index) - gap).isoformat())
        before = [e for e in rec.events if e["time"] < cut]
        if not before:
            stats.dropped_empty += 1
            continue
        cases.append(PatientRecord(rec.id, before, class_names[1], rec.birthdate, rec.source, {"index": index}))
        if rec.birthdate:
            case_ages.append(_age_days(datetime.fromisoformat(rec.birthdate[:10]), index))
    ages = np.sort(np.asarray(case_ages))
    out = list(cases)
    for rec in controls:
        reach = None
        if rec.birthdate and len(ages):
            birth = datetime.fromisoformat(rec.birthdate[:10])
            reach = _age_days(birth, rec.events[-1]["time"])
            # Only ages the record covers: an index before the first event would leave nothing.
            eligible = ages[(ages > _age_days(birth, rec.events[0]["time"]) + gap_days + 1) & (ages <= reach)]
        if reach is not None and len(eligible):
            index = _day((birth + timedelta(days=float(rng.choice(eligible)))).isoformat())
            cut = _day((datetime.fromisoformat(index) - gap).isoformat())
        else:
            stats.controls_whole_history += 1
            index = cut = "9999-12-31T00:00:00"
        before = [e for e in rec.events if e["time"] < cut]
        if not before:
            stats.dropped_empty += 1
            continue
        out.append(PatientRecord(rec.id, before, class_names[0], rec.birthdate, rec.source, {"index": index}))
    stats.cases = sum(r.label == class_names[1] for r in out)
    stats.controls = len(out) - stats.cases
    return out
