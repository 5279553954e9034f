"""On held-out patients of the heart-failure cohort, ``predict`` with an exported model gives the
AUROC the bench computes for that same model (issue 29).

The bench's data (outcome_dataset: the cohort of ../shared/data/ehr, 30 % held out,
stratified) and its scoring (bench.simulate.evaluate) against the exported TorchScript file
run through the real ``aeep-tui predict`` on the held-out patients written as JSONL: predict
rebuilds their matrices from the file's own vocabulary, vectors and T.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gensim", reason="the event embedding needs gensim")

from aeep_core.bench.metrics import auroc  # noqa: E402
from aeep_core.bench.simulate import evaluate  # noqa: E402
from aeep_core.learning.learner import ActiveLearner  # noqa: E402
from aeep_core.learning.portable import save_model, sequence_description  # noqa: E402
from aeep_core.learning.training import TrainConfig  # noqa: E402
from aeep_core.sequences.outcomes import HEART_FAILURE, outcome_dataset  # noqa: E402
from aeep_core.sequences.readers import PatientRecord, write_jsonl  # noqa: E402
from aeep_core.strategies import make_strategy  # noqa: E402
from aeep_tui.cli import main  # noqa: E402

EHR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ehr"


@pytest.mark.integration
@pytest.mark.skipif(not EHR.is_dir(), reason=f"the Synthea exports are not present at {EHR} (../shared/data/ehr)")
def test_predict_gives_the_benchs_auroc_on_held_out_heart_failure_patients(tmp_path, capsys):
    data = outcome_dataset(EHR, HEART_FAILURE, seed=0)  # what 'bench --task heart-failure' reads
    pool, test = data.pool, data.test
    assert test is not None and test.labels is not None and (test.labels == 1).sum() >= 2
    learner = ActiveLearner(
        pool, make_strategy("random"), config=TrainConfig(min_steps=60, max_steps=60), device="cpu", seed=0, test=test
    )
    first = learner.initial_ids(60)
    learner.add_labels(first, pool.labels[first])
    learner.train()
    bench = evaluate(learner, test)["auroc"]
    model = tmp_path / "hf.pt"
    meta = {"classes": list(pool.class_names), "modality": "sequence", **sequence_description(pool)}
    save_model(learner.model, pool.inputs[:2].clone(), meta, model, classes=list(range(pool.n_classes)))
    held_out = tmp_path / "held_out.jsonl"
    write_jsonl([PatientRecord(pid, events) for pid, events in zip(test.names, test.meta["events"])], held_out)
    capsys.readouterr()
    assert main(["predict", str(model), str(held_out), "--format", "jsonl", "--probabilities"]) == 0
    out = capsys.readouterr()
    rows = {r["person"]: r for r in map(json.loads, out.out.splitlines())}
    assert list(rows) == list(test.names)
    case = pool.class_names[1]
    p_case = np.array([r[f"p_{case}"] for r in rows.values()])  # 1 - confidence is 1.0 for a sure control
    predicted = auroc(p_case, test.labels == 1)
    print(f"held-out heart failure: bench AUROC {bench:.6f}, predict AUROC {predicted:.6f} ({len(rows)} patients)")
    assert 0.5 < bench and abs(predicted - bench) < 1e-9  # predict prints the float32 probabilities exactly
    assert "unknown to the model" in out.err  # the count of events the model never saw, not an error
