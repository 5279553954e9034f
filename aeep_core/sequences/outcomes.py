"""User-defined outcome cohorts over any sequence source (OMOP, Synthea, JSONL, long CSV).

An :class:`Outcome` says which events mark the outcome: codes (OMOP concept ids, SNOMED
codes, source values: whatever the events carry as ``code``), phrases found in the event
text (concept names, Synthea descriptions), and the event types that count (conditions
unless told otherwise). The case-control design is :func:`.cohort.build_cohort`'s: a case's
history ends strictly before the day of its first outcome event (minus an optional
prediction gap); a control is cut at an age drawn from the cases' ages at their index date.

Heart failure is the default outcome, so ``aeep-tui cohort DATA --out DIR`` with no outcome
reproduces the built-in heart-failure task on any source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from aeep_core.pool import DataError, Dataset, SkippedFile
from aeep_core.sequences.cohort import CohortStats, build_cohort, read_exports
from aeep_core.sequences.loading import build_dataset, read_records, split_records, synthea_exports
from aeep_core.sequences.omop import is_omop_folder, read_omop
from aeep_core.sequences.readers import PatientRecord, write_jsonl
from aeep_core.sequences.tables import Progress

#: SNOMED codes of heart failure as Synthea writes them (88805009 chronic congestive heart
#: failure, 84114007 heart failure), and the OMOP standard concepts (316139 Heart failure,
#: 319835 Congestive heart failure).
HF_SNOMED_CODES = frozenset({"88805009", "84114007"})
HF_OMOP_CONCEPTS = frozenset({"316139", "319835"})
CONTROL = "control"


@dataclass(frozen=True)
class Outcome:
    """Which events mark the outcome; the first one, per patient, is the index date."""

    name: str  # the positive class's label, e.g. "heart_failure"
    codes: frozenset[str] = frozenset()
    phrases: tuple[str, ...] = ()  # lower-case substrings of the event text
    types: frozenset[str] | None = frozenset({"condition"})  # None: any event type

    def __post_init__(self) -> None:
        if not self.codes and not self.phrases:
            raise DataError("an outcome needs --outcome TEXT or --outcome-codes CODE[,CODE]")

    def matches(self, event: dict[str, str]) -> bool:
        """Whether ``event`` is an outcome event (right type, and a listed code or phrase)."""
        if self.types is not None and event["type"] not in self.types:
            return False
        if event["code"] in self.codes:
            return True
        text = event["text"].lower()
        return any(p in text for p in self.phrases)

    @property
    def class_names(self) -> list[str]:
        """``[control, name]``: index 1 is the positive class, the one AUROC scores."""
        return [CONTROL, self.name]

    def describe(self) -> dict[str, Any]:
        """The definition as plain data, written beside the cohort so it can be reproduced."""
        return {
            "name": self.name,
            "codes": sorted(self.codes),
            "phrases": list(self.phrases),
            "types": sorted(self.types) if self.types is not None else "any",
        }


#: The built-in outcome (the benchmark's heart-failure task, and the default of every command).
HEART_FAILURE = Outcome("heart_failure", HF_SNOMED_CODES | HF_OMOP_CONCEPTS, ("heart failure",))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "outcome"


def make_outcome(
    text: str | None = None, codes: str | Iterable[str] | None = None, types: str = "condition", name: str | None = None
) -> Outcome:
    """An :class:`Outcome` from command-line values; heart failure when neither text nor codes.

    ``text`` matches case-insensitively inside the event text; ``codes`` is a comma-separated
    list (or iterable) matched exactly against event codes; ``types`` is ``any`` or a
    comma-separated list of event types (condition, medication, procedure, measurement, ...).
    """
    code_set = frozenset(c.strip() for c in (codes.split(",") if isinstance(codes, str) else codes or []) if c.strip())
    phrase = (text or "").strip().lower()
    if not code_set and not phrase:
        return HEART_FAILURE
    wanted = [t.strip().lower() for t in types.split(",") if t.strip()]
    type_set = None if not wanted or "any" in wanted else frozenset(wanted)
    label = _slug(name or phrase or "outcome")
    if label == CONTROL:
        raise DataError(f"the outcome cannot be called {CONTROL!r}: that is the other class; pick another --name")
    return Outcome(label, code_set, (phrase,) if phrase else (), type_set)


def named_after_events(outcome: Outcome, records: list[PatientRecord]) -> Outcome:
    """``outcome`` renamed after the text of its first matching event (codes alone say little).

    Used when the user gave codes but no name: ``--outcome-codes 320128`` on OMOP data with
    a concept table becomes ``essential_hypertension`` rather than ``outcome``.
    """
    text = next((e["text"] for r in records for e in r.events if outcome.matches(e) and e["text"]), "")
    name = _slug(text) if text and not text.replace(".", "").isdigit() else outcome.name
    return replace(outcome, name=name if name != CONTROL else outcome.name)


@dataclass
class CohortSource:
    """What was read: the records, their format, and the reader's notes."""

    records: list[PatientRecord]
    kind: str  # "omop", "synthea" or "sequences"
    stats: CohortStats = field(default_factory=CohortStats)


def read_source(data: Path | str, progress: Progress | None = None) -> CohortSource:
    """Every patient of ``data``: an OMOP folder, Synthea export(s), or JSONL/long-CSV files.

    Labels already in JSONL/CSV files are ignored: the outcome defines them anew.
    """
    folder = Path(data).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; point to an OMOP folder, Synthea export(s) or JSONL files")
    if is_omop_folder(folder):
        records, skipped = read_omop(folder, progress=progress)
        return CohortSource(records, "omop", CohortStats(exports=1, patients=len(records), skipped=[str(s) for s in skipped]))
    if synthea_exports(folder):
        records, stats = read_exports(folder)
        return CohortSource(records, "synthea", stats)
    pool, test, skipped = read_records(folder)
    records = [PatientRecord(r.id, r.events, None, r.birthdate, r.source) for r in pool + test]
    return CohortSource(records, "sequences", CohortStats(patients=len(records), skipped=[str(s) for s in skipped]))


def _median(values: list[float]) -> float:
    return round(float(np.median(values)), 1) if values else 0.0


def summarise(cohort: list[PatientRecord], outcome: Outcome, stats: CohortStats, gap_days: float) -> dict[str, Any]:
    """Counts and medians of a cohort: cases, controls, history length (events, years), age at index."""

    def group(label: str) -> dict[str, Any]:
        recs = [r for r in cohort if r.label == label]
        years = [
            (datetime.fromisoformat(r.events[-1]["time"]) - datetime.fromisoformat(r.events[0]["time"])).days / 365.25
            for r in recs
        ]
        ages = [
            (datetime.fromisoformat(r.extra["index"]) - datetime.fromisoformat(r.birthdate[:10])).days / 365.25
            for r in recs
            if r.birthdate and not r.extra.get("index", "").startswith("9999")
        ]
        return {
            "patients": len(recs),
            "median_events": _median([len(r.events) for r in recs]),
            "median_history_years": _median(years),
            "median_age_at_index": _median(ages),
        }

    return {
        "outcome": outcome.describe(),
        "gap_days": gap_days,
        "patients_read": stats.patients,
        "cases": stats.cases,
        "controls": stats.controls,
        "dropped_empty_history": stats.dropped_empty,
        "controls_whole_history": stats.controls_whole_history,
        "case_histories": group(outcome.name),
        "control_histories": group(CONTROL),
        "median_history_events": _median([len(r.events) for r in cohort]),
    }


def build_outcome_cohort(
    source: CohortSource, outcome: Outcome, seed: int = 0, gap_days: float = 0.0
) -> tuple[list[PatientRecord], dict[str, Any]]:
    """Label and cut ``source``'s patients for ``outcome``; return (cohort, summary).

    Raises :class:`DataError` when no patient has the outcome, saying what was looked for.
    """
    if gap_days < 0:
        raise DataError(f"--gap-days must be 0 or more, got {gap_days}")
    stats = source.stats
    cohort = build_cohort(
        source.records, seed, stats, is_case=outcome.matches, gap_days=gap_days, class_names=outcome.class_names
    )
    if stats.cases == 0:
        d = outcome.describe()
        looked = "; ".join(
            x
            for x in (
                f"codes {','.join(d['codes'])}" if d["codes"] else "",
                f"text containing {d['phrases'][0]!r}" if d["phrases"] else "",
            )
            if x
        )
        raise DataError(
            f"no patient has the outcome ({looked}; event types {d['types']}) with any history before it; "
            "check the codes (OMOP concept ids or source values), or try --outcome-types any"
        )
    return cohort, summarise(cohort, outcome, stats, gap_days)


def write_cohort(cohort: list[PatientRecord], out: Path, test_fraction: float, seed: int, summary: dict[str, Any]) -> list[Path]:
    """Write ``out/patients.jsonl`` (+ ``out/test.jsonl`` when ``test_fraction`` > 0) and ``out/cohort.json``.

    The folder is a sequence folder ``simulate``/``label`` open directly: ``test*`` files are
    its labelled test set. The split is stratified, so both sides get cases.
    """
    import json

    if test_fraction > 0:
        if summary["cases"] < 2:
            raise DataError(f"{summary['cases']} case(s): too few to hold some out; use --test-fraction 0")
        pool, test = split_records(cohort, test_fraction, seed)
    else:
        pool, test = cohort, []
    written = [out / "patients.jsonl"]
    write_jsonl(pool, written[0])
    old_test = out / "test.jsonl"
    if test:
        write_jsonl(test, old_test)
        written.append(old_test)
    elif old_test.exists():  # a test file from an earlier run would be read as this cohort's
        old_test.unlink()
    summary = {**summary, "pool": len(pool), "test": len(test), "seed": seed}
    (out / "cohort.json").write_text(json.dumps(summary, indent=1) + "\n")
    written.append(out / "cohort.json")
    return written


def outcome_dataset(data: Path | str, outcome: Outcome, seed: int, test_fraction: float = 0.3, gap_days: float = 0.0) -> Dataset:
    """Pool + labelled test set of ``outcome``'s cohort in ``data`` (any source), for bench and simulate.

    The split is stratified (both sides get cases) and reproducible under ``seed``; the event
    embedding is trained on the pool's histories only. ``pool.meta["cohort"]`` holds the
    summary (:func:`summarise`).
    """
    source = read_source(data)
    cohort, summary = build_outcome_cohort(source, outcome, seed, gap_days)
    if summary["cases"] < 2:
        raise DataError(f"{data}: {summary['cases']} patient(s) with {outcome.name}; the task needs at least 2")
    pool_recs, test_recs = split_records(cohort, test_fraction, seed)
    ds = build_dataset(
        pool_recs,
        test_recs,
        seed=seed,
        root=str(Path(data).resolve()),
        class_names=outcome.class_names,
        skipped=[SkippedFile(s.split(": ", 1)[0], s.split(": ", 1)[-1]) for s in source.stats.skipped],
    )
    ds.pool.meta["cohort"] = summary
    return ds
