"""Heart-failure learning curves: strategies side by side on the Synthea cohort, AUROC per round.

``simulate`` reports accuracy only, which is ~97% for a model that never says "heart failure"
(3% positives). This runs the same loop (:class:`ActiveLearner`, same seed set, same training)
and also records test AUROC and how many positives the labelled set holds.

    python -m aeep_core.sequences.hf_measure --data ../shared/data/ehr --strategies random,em,aeep \
        --seeds 0,1 --budget 200 --json out/hf.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from aeep_core.data.loading import Dataset
from aeep_core.learner import ActiveLearner
from aeep_core.strategies import make_strategy
from aeep_core.training import TrainConfig, score

REPORT_AT = (20, 60, 100, 200, 300, 500)


def auroc(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve of class 1; None when the labels hold one class only."""
    if len(np.unique(labels)) < 2 or probs.shape[1] < 2:
        return None
    return float(roc_auc_score(labels, probs[:, 1]))


def run_curve(data: Dataset, strategy: str, seed: int, budget: int, k: int, initial: int, train: TrainConfig) -> dict[str, Any]:
    """One strategy, one seed: a record per round (labels, positives in L, AUROC, accuracy, m, mp)."""
    pool, test = data.pool, data.test
    assert test is not None and test.labels is not None and pool.labels is not None
    learner = ActiveLearner(pool, make_strategy(strategy), config=train, device="cpu", seed=seed, test=test)
    first = learner.initial_ids(initial)
    learner.add_labels(first, pool.labels[first])
    rounds: list[dict[str, Any]] = []
    budget = min(budget, len(pool))
    while True:
        t0 = time.perf_counter()
        learner.train()
        probs, _ = score(learner.model, test.inputs, learner.device)
        ys = np.fromiter(learner.labels.values(), dtype=np.int64)
        rec: dict[str, Any] = {
            "labelled": len(learner.labels), "positives": int((ys == 1).sum()),
            "auroc": auroc(probs, test.labels), "accuracy": float((probs.argmax(1) == test.labels).mean()),
            "m": None, "mp": None,
        }
        n = min(k, budget - len(learner.labels), len(learner.unlabelled_ids()))
        if n > 0:
            proposal = learner.propose(n)
            rec["m"] = proposal.m
            rec["mp"], _ = learner.teach(proposal, pool.labels[proposal.ids])
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        rounds.append(rec)
        if n <= 0:
            return {"strategy": strategy, "seed": seed, "rounds": rounds}


def _at(rounds: list[dict[str, Any]], key: str, n: int) -> float | None:
    x = [r["labelled"] for r in rounds if r[key] is not None]
    y = [r[key] for r in rounds if r[key] is not None]
    return float(np.interp(n, x, y)) if x and x[0] <= n <= x[-1] else None


def _aulc(rounds: list[dict[str, Any]], key: str) -> float | None:
    pts = [(r["labelled"], r[key]) for r in rounds if r[key] is not None]
    if len(pts) < 2:
        return pts[0][1] if pts else None
    x, y = np.array(pts, dtype=np.float64).T
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per strategy: mean over seeds of ``auroc_at``/``acc_at``/``positives_at`` per label count, and ``aulc``."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["strategy"] for r in runs):
        mine = [r["rounds"] for r in runs if r["strategy"] == name]
        mean = lambda vals: None if any(v is None for v in vals) else float(np.mean(vals))  # noqa: E731
        last = min(rs[-1]["labelled"] for rs in mine)  # a count every seed reached
        counts = [n for n in REPORT_AT if n < last] + [last]
        out[name] = {
            "auroc_at": {n: mean([_at(rs, "auroc", n) for rs in mine]) for n in counts},
            "acc_at": {n: mean([_at(rs, "accuracy", n) for rs in mine]) for n in counts},
            "positives_at": {n: mean([_at(rs, "positives", n) for rs in mine]) for n in counts},
            "aulc": mean([_aulc(rs, "auroc") for rs in mine]),
            "seeds": len(mine),
        }
    return out


def markdown(summary: dict[str, Any]) -> str:
    """The table for the notes: AUROC (positives in L) at each label count, and AULC."""
    counts = sorted({n for s in summary.values() for n in s["auroc_at"]})
    lines = ["| strategy | " + " | ".join(f"AUROC@{n} (pos)" for n in counts) + " | AULC | acc@last |",
             "|---" * (len(counts) + 3) + "|"]
    fmt = lambda v, p="{:.3f}": "-" if v is None else p.format(v)  # noqa: E731
    for name, s in summary.items():
        cells = [f"{fmt(s['auroc_at'][n])} ({fmt(s['positives_at'][n], '{:.1f}')})" for n in counts]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fmt(s['aulc'])} | {fmt(s['acc_at'][counts[-1]])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from aeep_core.sequences.cohort import heart_failure_dataset

    p = argparse.ArgumentParser(prog="python -m aeep_core.sequences.hf_measure", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--strategies", default="random,em,kff,coreset,aeep")
    p.add_argument("--seeds", default="0")
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--batch-size", "-k", type=int, default=20)
    p.add_argument("--initial", type=int, default=20)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        data = heart_failure_dataset(args.data, seed=seed)
        print(f"seed {seed}: pool {len(data.pool)} ({int(data.pool.labels.sum())} HF), "
              f"test {len(data.test)} ({int(data.test.labels.sum())} HF), T={data.pool.meta['length']}", flush=True)
        for name in args.strategies.split(","):
            run = run_curve(data, name, seed, args.budget, args.batch_size, args.initial, TrainConfig())
            last = run["rounds"][-1]
            print(f"  {name}: AUROC {last['auroc']}, positives {last['positives']}, "
                  f"{sum(r['seconds'] for r in run['rounds']):.0f}s", flush=True)
            runs.append(run)
    summary = summarise(runs)
    print(markdown(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
