"""The benchmark's report: summary figures per variant and batch size, and the table."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from aeep_core.bench.metrics import aulc, labels_to, labels_to_all_classes, rarest_classes, spread, value_at
from aeep_core.bench.settings import BenchSettings, Task, Variant

FORMAT = "aeep-bench/1"  # the JSON report's format name
_SIMD = {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "neon", "asimd", "sve"}


def cpu_description() -> dict[str, Any]:
    """The CPU a timing was measured on: its model name, the vector extensions that decide
    how fast torch runs on it, and its logical cores (machines of one name differ)."""
    model, flags = "", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"model": model or platform.processor() or platform.machine(), "simd": sorted(flags & _SIMD), "cores": os.cpu_count()}


def _curve(run: dict[str, Any], figure: str) -> tuple[list[int], list[float | None]]:
    return [r["labelled"] for r in run["rounds"]], [r.get(figure) for r in run["rounds"]]


def balanced_aulc(run: dict[str, Any], start: int, end: int) -> float | None:
    """The area under a run's balanced-accuracy curve over [start, end] labels."""
    return aulc(*_curve(run, "balanced_accuracy"), start, end)


def _at(curves: list[tuple[list[int], list[float | None]]], task: Task, end: int) -> dict[str, Any]:
    return {str(n): spread([value_at(x, y, n) for x, y in curves]) for n in task.at if n <= end}


def _rare3_labels(run: dict[str, Any]) -> int | None:
    """Labels the run had spent by its end on the 3 classes rarest in its pool."""
    last = run["rounds"][-1].get("per_class")
    if not run.get("pool_counts") or not last:
        return None
    return int(sum(last[c] for c in rarest_classes(run["pool_counts"], 3)))


def _labels_to_all_classes(run: dict[str, Any]) -> int | None:
    if not run.get("pool_counts"):
        return None
    rounds = run["rounds"]
    return labels_to_all_classes([q["labelled"] for q in rounds], [q.get("per_class") for q in rounds], run["pool_counts"])


def _per_round_mean(runs: list[dict[str, Any]], key: str) -> list[float | None]:
    """Round by round, the mean of ``key`` over the runs that measured it there."""
    longest = max((len(r["rounds"]) for r in runs), default=0)
    return [_mean([r["rounds"][i].get(key) for r in runs if i < len(r["rounds"])]) for i in range(longest)]


def summarise(runs: list[dict[str, Any]], task: Task, start: int, end: int) -> dict[str, Any]:
    """Mean ± spread over the runs (seeds) of one variant and batch size.

    ``aulc`` and ``labels_to`` are on the task's curve figure (accuracy for MNIST);
    ``acc_at`` (and ``auroc_at`` where AUROC was measured) at the task's label counts.
    For skewed classes: ``balanced_aulc`` over [start, end]; ``balanced_at``,
    ``macro_f1_at``, ``min_recall_at`` at the task's label counts (and ``…_final``);
    ``rare3_labels`` (labels on the pool's 3 rarest classes by the end; with fewer than
    four classes, all but the commonest) and ``labels_to_all_classes`` (missing: a class
    never got a label). ``labelled``, ``m`` and ``mp``: per round, the mean over seeds.
    """
    curves = [_curve(r, task.curve) for r in runs]
    acc = [_curve(r, "accuracy") for r in runs]
    balanced, f1, worst = ([_curve(r, figure) for r in runs] for figure in ("balanced_accuracy", "macro_f1", "min_recall"))
    out: dict[str, Any] = {
        "seeds": [r["seed"] for r in runs],
        "aulc": spread([aulc(x, y, start, end) for x, y in curves]),
        "labels_to": {f"{t:g}": spread([labels_to(x, y, t) for x, y in curves]) for t in task.thresholds},
        "acc_at": {str(n): spread([value_at(x, y, n) for x, y in acc]) for n in task.at if n <= end},
        "final": spread([y[-1] for _, y in acc]),
        "s_per_round": spread([r.get("s_per_round") for r in runs]),
        "cpu_s_per_round": spread([r["cpu_s"] / len(r["rounds"]) if r.get("cpu_s") else None for r in runs]),
        "train_s": spread([_mean([q["train_s"] for q in r["rounds"]]) for r in runs]),
        "select_s": spread([_mean([q["select_s"] for q in r["rounds"]]) for r in runs]),
        "balanced_aulc": spread([balanced_aulc(r, start, end) for r in runs]),
        "balanced_at": _at(balanced, task, end),
        "macro_f1_at": _at(f1, task, end),
        "min_recall_at": _at(worst, task, end),
        "balanced_final": spread([y[-1] for _, y in balanced]),
        "macro_f1_final": spread([y[-1] for _, y in f1]),
        "min_recall_final": spread([y[-1] for _, y in worst]),
        "rare3_labels": spread([_rare3_labels(r) for r in runs]),
        "labels_to_all_classes": spread([_labels_to_all_classes(r) for r in runs]),
        "labelled": _per_round_mean(runs, "labelled"),
        "m": _per_round_mean(runs, "m"),
        "mp": _per_round_mean(runs, "mp"),
    }
    if any(q.get("auroc") is not None for r in runs for q in r["rounds"]):
        au = [_curve(r, "auroc") for r in runs]
        out["auroc_at"] = {str(n): spread([value_at(x, y, n) for x, y in au]) for n in task.at if n <= end}
        # two classes: how many class-1 items (cases) the labelled set held at each count
        found = [
            ([q["labelled"] for q in r["rounds"]], [q["per_class"][1] if q.get("per_class") else None for q in r["rounds"]])
            for r in runs
        ]
        out["class1_at"] = {str(n): spread([value_at(x, y, n) for x, y in found]) for n in task.at if n <= end}
        out["class1_final"] = spread([y[-1] for _, y in found])
    return out


def _mean(xs: list[float | None]) -> float | None:
    known = [x for x in xs if x is not None]
    return float(np.mean(known)) if known else None


def paired_to_best(runs: dict[str, list[dict[str, Any]]], start: int, end: int) -> dict[str, dict[str, Any]]:
    """Per variant, its balanced AULC minus the best variant's (best by mean), seed by seed
    on the seeds both ran: ``mean`` and ``se`` (standard error, None under two seeds) of the
    differences, ``n`` seeds, ``against`` the best. Pairing cancels what a seed does to
    every strategy (its initial set, its long tail), which the spread over seeds keeps."""
    by_seed = {name: {r["seed"]: balanced_aulc(r, start, end) for r in mine} for name, mine in runs.items()}
    means = {name: _mean(list(seeds.values())) for name, seeds in by_seed.items()}
    ranked = [name for name in means if means[name] is not None]
    if not ranked:
        return {}
    best = max(ranked, key=lambda name: means[name] or 0.0)
    top = {s: v for s, v in by_seed[best].items() if v is not None}
    out: dict[str, dict[str, Any]] = {}
    for name, seeds in by_seed.items():
        diffs = np.array([v - top[s] for s, v in seeds.items() if v is not None and s in top], dtype=np.float64)
        se = float(diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else None
        out[name] = {"against": best, "n": int(len(diffs)), "mean": float(diffs.mean()) if len(diffs) else None, "se": se}
    return out


def build_report(
    settings: BenchSettings, task: Task, variants: list[Variant], runs: list[dict[str, Any]], started: float
) -> dict[str, Any]:
    """The JSON document: settings, environment, and per variant its summary per batch
    size and every run (``simulate`` format plus ``variant``, ``wall_s``, ``s_per_round``)."""
    import torch

    strategies: dict[str, Any] = {}
    for v in variants:
        mine = [r for r in runs if r["variant"] == v.name]
        strategies[v.name] = {
            "strategy": v.strategy,
            "options": v.options,
            "train": v.train,
            "late": v.late,
            "summary": {
                str(k): summarise([r for r in mine if r["batch_size"] == k], task, settings.initial, settings.budget)
                for k in settings.batch_sizes
                if any(r["batch_size"] == k for r in mine)
            },
            "runs": mine,
        }
    for k in settings.batch_sizes:
        ran = {n: [r for r in e["runs"] if r["batch_size"] == k] for n, e in strategies.items() if str(k) in e["summary"]}
        for name, paired in paired_to_best(ran, settings.initial, settings.budget).items():
            strategies[name]["summary"][str(k)]["paired"] = paired
    plain = dataclasses.asdict(settings)
    plain["data"] = None if settings.data is None else str(settings.data)
    return {
        "format": FORMAT,
        "task": task.name,
        "curve": task.curve,
        "settings": plain,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "cpu": cpu_description(),
            "device": runs[0]["device"] if runs else None,
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": time.time() - started,
        "strategies": strategies,
    }


_NONE: dict[str, Any] = {"mean": None, "n": 0, "missing": 0}


def _cell(s: dict[str, Any], scale: float = 100.0, digits: int = 1, unit: str = "") -> str:
    if s["mean"] is None:
        return "-"
    text = f"{scale * s['mean']:.{digits}f}"
    if s["n"] > 1:
        text += f"±{scale * s['std']:.{digits}f}"
    return text + unit


def _labels_cell(s: dict[str, Any], end: int) -> str:
    """Mean labels to a threshold; ``>B`` when no seed reached it, ``(r/n)`` when some did not."""
    if s["n"] == 0 and s["missing"] == 0:  # not measured (a report from before the figure)
        return "-"
    if s["mean"] is None:
        return f">{end}"
    text = _cell(s, scale=1.0, digits=0)
    return text + (f" ({s['n']}/{s['n'] + s['missing']})" if s["missing"] else "")


def _paired_cell(paired: dict[str, Any] | None, name: str) -> str:
    """Percentage points of balanced AULC behind the best variant, ± standard error."""
    if not paired or paired["mean"] is None:
        return "-"
    if paired["against"] == name:
        return "best"
    text = f"{100 * paired['mean']:+.1f}"
    return text + (f"±{100 * paired['se']:.1f}" if paired["se"] is not None else "")


def table_blocks(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per batch size: (title, header, rows) of the table, cells already formatted."""
    end = report["settings"]["budget"]
    names = list(report["strategies"])
    ks = sorted({int(k) for v in report["strategies"].values() for k in v["summary"]})
    blocks = []
    for k in ks:
        rows = [(n, report["strategies"][n]["summary"].get(str(k))) for n in names]
        rows = [(n, s) for n, s in rows if s is not None]
        if not rows:
            continue
        first = rows[0][1]
        at, thr = list(first["acc_at"]), list(first["labels_to"])
        au = list(first.get("auroc_at", {}))  # binary tasks: AUROC at the same counts
        found = ["class1_final"] if "class1_final" in first else []  # and the class-1 items labelled by the end
        head = [
            "strategy",
            *[f"acc@{n}" for n in at],
            *[f"auroc@{n}" for n in au],
            *[f"class 1@{end}" for _ in found],
            *[f"L→{float(t) * 100:g}%" for t in thr],
            "AULC",
            "bal. AULC",
            "Δbal. vs best",
            f"macro-F1@{end}",
            f"min recall@{end}",
            "rare-3 labels",
            "L→all classes",
            "s/round",
            "cpu s/round",
        ]
        body = [
            [
                name,
                *[_cell(s["acc_at"][n]) for n in at],
                *[_cell(s.get("auroc_at", {}).get(n, _NONE)) for n in au],
                *[_cell(s.get(n, _NONE), scale=1.0) for n in found],
                *[_labels_cell(s["labels_to"][t], end) for t in thr],
                _cell(s["aulc"]),
                _cell(s.get("balanced_aulc", _NONE)),
                _paired_cell(s.get("paired"), name),
                _cell(s.get("macro_f1_final", _NONE)),
                _cell(s.get("min_recall_final", _NONE)),
                _cell(s.get("rare3_labels", _NONE), scale=1.0, digits=1),
                _labels_cell(s.get("labels_to_all_classes", _NONE), end),
                _cell(s["s_per_round"], scale=1.0),
                _cell(s["cpu_s_per_round"], scale=1.0),
            ]
            for name, s in rows
        ]
        seeds = len(first["seeds"])
        title = (
            f"k={k}, {seeds} seed{'s' if seeds != 1 else ''}, labels {report['settings']['initial']}→{end}"
            f" ({report['task']}, curve: {report['curve']}; mean±sd over seeds)"
        )
        blocks.append((title, head, body))
    return blocks


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table per batch size: accuracy at fixed label counts (%), labels to each
    threshold, AULC (%), balanced AULC (%) and its paired gap to the best variant (points
    ± standard error), macro-F1 and min recall at the end (%), labels on the pool's 3
    rarest classes, labels until every class had one, wall and CPU seconds per round
    (train + select + test); mean ± standard deviation over seeds."""
    lines: list[str] = []
    for title, head, body in table_blocks(report):
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        fmt = lambda r, widths=widths: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
        lines += [title, fmt(head), fmt(["-" * w for w in widths]), *map(fmt, body), ""]
    return "\n".join(lines).rstrip() + "\n"


def format_markdown(report: dict[str, Any]) -> str:
    """The same table as Markdown (for BENCHMARKS.md)."""
    out: list[str] = []
    for title, head, body in table_blocks(report):
        out += [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(r) + " |" for r in body]
        out.append("")
    return "\n".join(out)
