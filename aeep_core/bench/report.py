"""The benchmark's report: summary figures per variant and batch size, and the table."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from aeep_core.bench.metrics import aulc, labels_to, spread, value_at
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


def summarise(runs: list[dict[str, Any]], task: Task, start: int, end: int) -> dict[str, Any]:
    """Mean ± spread over the runs (seeds) of one variant and batch size.

    ``aulc`` and ``labels_to`` are on the task's curve figure (accuracy for MNIST);
    ``acc_at`` (and ``auroc_at`` where AUROC was measured) at the task's label counts.
    """
    curves = [_curve(r, task.curve) for r in runs]
    acc = [_curve(r, "accuracy") for r in runs]
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
            "summary": {
                str(k): summarise([r for r in mine if r["batch_size"] == k], task, settings.initial, settings.budget)
                for k in settings.batch_sizes
                if any(r["batch_size"] == k for r in mine)
            },
            "runs": mine,
        }
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
    if s["mean"] is None:
        return f">{end}"
    text = _cell(s, scale=1.0, digits=0)
    return text + (f" ({s['n']}/{s['n'] + s['missing']})" if s["missing"] else "")


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
    threshold, AULC (%), wall and CPU seconds per round (train + select + test); mean ±
    standard deviation over seeds."""
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
