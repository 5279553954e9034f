"""Small generated patient data for the sequence tests (no real data needed)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np

# Two kinds of patient whose histories differ in which events they hold, so a model can learn them.
SICK_CODES = [
    ("condition", "38341003", "Hypertension"),
    ("condition", "431855005", "Chronic kidney disease"),
    ("medication", "310798", "Hydrochlorothiazide 25 MG"),
    ("procedure", "40701008", "Echocardiography"),
]
WELL_CODES = [
    ("encounter", "410620009", "Well child visit"),
    ("immunization", "140", "Influenza vaccine"),
    ("condition", "444814009", "Viral sinusitis"),
    ("procedure", "117015009", "Throat culture"),
]
NOISE_CODES = [("encounter", "185349003", "Encounter for check up"), ("condition", "195662009", "Acute viral pharyngitis")]


def patient_events(kind: str, rng: np.random.Generator, n: int | None = None) -> list[dict]:
    """A time-ordered event list; ``kind`` "sick" or "well" sets which codes dominate."""
    codes = SICK_CODES if kind == "sick" else WELL_CODES
    n = int(rng.integers(4, 20)) if n is None else n
    day = date(2000, 1, 1) + timedelta(days=int(rng.integers(0, 3000)))
    events = []
    for _ in range(n):
        day += timedelta(days=int(rng.integers(1, 200)))
        pick = codes if rng.random() < 0.8 else NOISE_CODES
        etype, code, text = pick[int(rng.integers(len(pick)))]
        events.append({"time": day.isoformat(), "code": code, "text": text, "type": etype})
    return events


def write_jsonl_folder(root: Path, per_class: int = 20, seed: int = 0, test_per_class: int = 0) -> Path:
    """``root/patients.jsonl`` (labelled sick/well) and optionally ``root/test.jsonl``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("patients.jsonl", per_class), ("test.jsonl", test_per_class)):
        if n == 0:
            continue
        with (root / name).open("w") as fh:
            for i in range(n):
                for kind in ("sick", "well"):
                    obj = {"id": f"{name[:4]}-{kind}-{i}", "events": patient_events(kind, rng), "label": kind}
                    fh.write(json.dumps(obj) + "\n")
    return root


PATIENTS_NEW = "Id,BIRTHDATE,DEATHDATE,SSN,FIRST,LAST,GENDER,INCOME\n"
PATIENTS_OLD = "ID,BIRTHDATE,DEATHDATE,SSN,FIRST,LAST,GENDER\n"


def write_synthea_export(folder: Path, patients: dict[str, dict], old_layout: bool = False) -> Path:
    """A minimal Synthea export: ``patients`` maps id -> {"birth": "YYYY-MM-DD", "events": [...]}.

    ``old_layout`` writes the older column sets (``ID``, procedures by ``DATE``, conditions
    without ``SYSTEM``); the new one has ``Id``, ``SYSTEM`` and extra cost columns.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = [f"{pid},{p['birth']},,999-00-0000,A,B,F" + ("" if old_layout else ",50000") for pid, p in patients.items()]
    (folder / "patients.csv").write_text((PATIENTS_OLD if old_layout else PATIENTS_NEW) + "\n".join(rows) + "\n")
    tables: dict[str, list[str]] = {"condition": [], "procedure": [], "medication": [], "encounter": []}
    for pid, p in patients.items():
        for ev in p["events"]:
            t, c, d = ev["time"], ev["code"], ev["text"]
            if ev["type"] == "condition":
                tables["condition"].append(
                    f"{t},,{pid},enc,{c},{d}" if old_layout else f"{t},,{pid},enc,http://snomed.info/sct,{c},{d}"
                )
            elif ev["type"] == "procedure":
                tables["procedure"].append(
                    f"{t},{pid},enc,{c},{d},12.5,," if old_layout else f"{t}T10:00:00Z,{t}T10:30:00Z,{pid},enc,{c},{d},12.5,,"
                )
            elif ev["type"] == "medication":
                tables["medication"].append(f"{t},,{pid},enc,{c},{d},,")
            else:
                tables["encounter"].append(f"e1,{t}T09:00:00Z,{t}T09:15:00Z,{pid},org,prov,pay,wellness,{c},{d},1,2,0,,")
    headers = {
        "condition": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION"
        if old_layout
        else "START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION",
        "procedure": "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION"
        if old_layout
        else "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION",
        "medication": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,REASONCODE,REASONDESCRIPTION",
        "encounter": "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,"
        "BASE_ENCOUNTER_COST,TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION",
    }
    for etype, lines in tables.items():
        (folder / f"{etype}s.csv").write_text(headers[etype] + "\n" + "".join(line + "\n" for line in lines))
    return folder
