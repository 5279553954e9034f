"""The benchmark's figure: learning curves per batch size, and AEEP's m and mp per round."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from aeep_core.extras import require


def _mean_curve(runs: list[dict[str, Any]], figure: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Label counts shared by the runs, and the mean, min, max of ``figure`` at each."""
    counts = sorted({r["labelled"] for run in runs for r in run["rounds"]})
    table = np.full((len(runs), len(counts)), np.nan)
    pos = {n: i for i, n in enumerate(counts)}
    for j, run in enumerate(runs):
        for r in run["rounds"]:
            if r.get(figure) is not None:
                table[j, pos[r["labelled"]]] = r[figure]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column is simply not drawn
        return np.array(counts), np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Write a PNG: one row per batch size; left, the learning curve of every variant
    (mean over seeds, band = min..max); right, m (exploration picks per batch) and mp
    (matching probability) of every variant that has an m (AEEP, EE and ablations)."""
    matplotlib = require("matplotlib", "bench", "the benchmark's plot (--plot)")
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    figure = report["curve"]
    ks = sorted({int(k) for v in report["strategies"].values() for k in v["summary"]})
    fig, axes = plt.subplots(len(ks), 2, figsize=(13, 4.2 * len(ks)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, k in zip(axes, ks):
        curve_ax, m_ax = row
        mp_ax = m_ax.twinx()
        for i, (name, entry) in enumerate(report["strategies"].items()):
            runs = [r for r in entry["runs"] if r["batch_size"] == k]
            if not runs:
                continue
            c = colours[i % len(colours)]
            style = "-" if name == entry["strategy"] else "--"  # variants/ablations dashed
            x, mean, lo, hi = _mean_curve(runs, figure)
            curve_ax.plot(x, 100 * mean, style, color=c, label=name, lw=2.2 if name == "aeep" else 1.3)
            if len(runs) > 1:
                curve_ax.fill_between(x, 100 * lo, 100 * hi, color=c, alpha=0.12)
            if any(r.get("m") is not None for run in runs for r in run["rounds"]):
                x, m, _, _ = _mean_curve(runs, "m")
                m_ax.plot(x, m, style, color=c, marker="o", ms=3, label=f"{name} m")
                x, mp, _, _ = _mean_curve(runs, "mp")
                mp_ax.plot(x, mp, ":", color=c, marker="x", ms=4, label=f"{name} mp")
        curve_ax.set(xlabel="labelled items", ylabel=f"test {figure} (%)", title=f"learning curves, k={k}")
        lows = [r.get(figure) for e in report["strategies"].values() for run in e["runs"] for r in run["rounds"]]
        lows = [v for v in lows if v is not None]
        if lows:  # the interesting part is the top; the first round's low value would squash it
            curve_ax.set_ylim(max(0.0, 100 * float(np.percentile(lows, 10)) - 2), 100 * max(lows) + 0.5)
        curve_ax.grid(alpha=0.3)
        curve_ax.legend(fontsize=8, loc="lower right")
        m_ax.set(xlabel="labelled items", ylabel="m (exploration picks)", title=f"m (lines) and mp (dotted), k={k}")
        m_ax.set_ylim(0, k + 0.5)
        mp_ax.set_ylim(0, 1.05)
        mp_ax.set_ylabel("mp (matching probability)")
        handles = m_ax.get_legend_handles_labels()[0] + mp_ax.get_legend_handles_labels()[0]
        if handles:
            m_ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper right")
        m_ax.grid(alpha=0.3)
    seeds = len(report["settings"]["seeds"])
    fig.suptitle(f"aeep-tui bench: {report['task']}, {seeds} seed{'s' if seeds != 1 else ''}, mean (band: min–max)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
