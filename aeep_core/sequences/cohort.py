"""Heart-failure cohort from Synthea exports: prediction before the first diagnosis.

Label 1 (``heart_failure``): a condition with SNOMED 88805009 (chronic congestive heart
failure) or 84114007 (heart failure), or whose text contains "heart failure". The index date
is the day of the first such diagnosis and only events strictly before that day are kept, so
neither the diagnosis nor anything recorded on its day (the echo, the furosemide) leaks in.

Controls (label 0, ``control``) are cut at a comparable index date: an age drawn from the
cases' ages at diagnosis, among those the control's record covers (age matching, the usual
case-control design); a control whose record covers no case age keeps its whole history. Without the
cut, controls would carry histories up to the export date and the model could learn "long
recent history = control".

``python -m aeep_core.sequences.cohort --data ../shared/data/ehr --out DIR`` writes the cohort
as ``DIR/patients.jsonl`` + ``DIR/test.jsonl``, a folder ``aeep-tui simulate --data DIR`` reads.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from aeep_core.pool import DataError, Dataset, SkippedFile
from aeep_core.sequences.loading import build_dataset, split_records, synthea_exports
from aeep_core.sequences.readers import PatientRecord, merge_records, read_synthea_export, write_jsonl

HF_CODES = frozenset({"88805009", "84114007"})
CLASS_NAMES = ["control", "heart_failure"]  # index 1 = positive, the class AUROC scores


def is_heart_failure(event: dict[str, str]) -> bool:
    """A heart-failure diagnosis: a condition with an HF SNOMED code or "heart failure" in its text."""
    return event["type"] == "condition" and (event["code"] in HF_CODES or "heart failure" in event["text"].lower())


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
    is_case: Callable[[dict[str, str]], bool] = is_heart_failure,
    gap_days: float = 0.0,
    class_names: Sequence[str] = CLASS_NAMES,
) -> list[PatientRecord]:
    """Label and cut every patient at its index date (see module doc); drop empty histories.

    ``is_case`` defines the outcome (heart failure unless told otherwise; see
    :mod:`.cohorts`). ``gap_days`` > 0 ends every history that many days before its index
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


def heart_failure_dataset(data_dir: Path, seed: int, test_fraction: float = 0.3) -> Dataset:
    """Pool + labelled test set of the heart-failure cohort of every usable export under ``data_dir``.

    The split is stratified (both sides get cases) and reproducible under ``seed``; the event
    embedding is trained on the pool's histories only. ``pool.meta["cohort"]`` holds the
    :class:`CohortStats` as a dict.
    """
    records, stats = read_exports(data_dir)
    cohort = build_cohort(records, seed, stats)
    if stats.cases < 2:
        raise DataError(f"{data_dir}: {stats.cases} heart-failure patients found; the task needs at least 2")
    pool_recs, test_recs = split_records(cohort, test_fraction, seed)
    ds = build_dataset(
        pool_recs,
        test_recs,
        seed=seed,
        root=str(Path(data_dir).resolve()),
        class_names=list(CLASS_NAMES),
        skipped=[SkippedFile(s.split(": ", 1)[0], s.split(": ", 1)[-1]) for s in stats.skipped],
    )
    ds.pool.meta["cohort"] = stats.as_dict()
    return ds


def describe(records: list[PatientRecord]) -> dict[str, Any]:
    """History-length and event-type figures for a list of records."""
    lengths = np.array([len(r.events) for r in records])
    types = Counter(e["type"] for r in records for e in r.events)
    return {
        "patients": len(records),
        "events": int(lengths.sum()),
        "median_events": float(np.median(lengths)) if len(lengths) else 0.0,
        "p75_events": float(np.quantile(lengths, 0.75)) if len(lengths) else 0.0,
        "types": dict(types.most_common()),
    }


def main(argv: list[str] | None = None) -> int:
    """Write the cohort as JSONL (pool + test) and print its figures."""
    p = argparse.ArgumentParser(prog="python -m aeep_core.sequences.cohort", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder of Synthea exports (e.g. ../shared/data/ehr)")
    p.add_argument("--out", type=Path, required=True, help="write patients.jsonl and test.jsonl here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.3)
    args = p.parse_args(argv)
    try:
        records, stats = read_exports(args.data)
        cohort = build_cohort(records, args.seed, stats)
        pool_recs, test_recs = split_records(cohort, args.test_fraction, args.seed)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_jsonl(pool_recs, args.out / "patients.jsonl")
    write_jsonl(test_recs, args.out / "test.jsonl")
    for s in stats.skipped:
        print(f"note {s}", file=sys.stderr)
    print({k: v for k, v in stats.as_dict().items() if k != "skipped"})
    for name, recs in (("pool", pool_recs), ("test", test_recs)):
        d = describe(recs)
        pos = sum(r.label == CLASS_NAMES[1] for r in recs)
        print(
            f"{name}: {d['patients']} patients ({pos} heart failure), {d['events']} events, "
            f"median {d['median_events']:.0f}, p75 {d['p75_events']:.0f}; types {d['types']}"
        )
    print(f"wrote {args.out / 'patients.jsonl'} and {args.out / 'test.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
