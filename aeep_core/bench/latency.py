"""Figures of the latency benchmark (the replay itself drives the app: ``aeep_tui.latency_replay``).

Per mode (``plain``: retrain and select after the last label; ``pipelined``: train while
the person labels, choose ahead): the wait from the last label of a batch to the next
batch on screen (median, p95), keystroke-to-screen time while training runs (p99), peak
resident memory, and test accuracy at fixed label counts.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aeep_core.session.types import ProjectSettings

MODES = ("plain", "pipelined")
ACC_AT = (100, 200, 300, 500, 1000)


@dataclass
class LatencySettings:
    """One latency benchmark: a simulated person at ``seconds_per_label``."""

    data: str
    seconds_per_label: float = 1.0
    batch_size: int = 20
    budget: int = 320  # one batch past acc@300: see aeep_tui.latency_replay.preset
    seeds: int = 1
    candidates: int = 10_000
    strategy: str = "aeep"
    device: str = "auto"
    # the app's own defaults, so the bench measures what a new project runs
    lookahead: int = ProjectSettings.lookahead
    steps_per_label: int = ProjectSettings.steps_per_label
    modes: tuple[str, ...] = MODES
    # a slower machine, every process of the replay slowed (bench.slow_machine): one that
    # trains this many steps/s with AVX2 kernels, or one this many times slower than this one
    emulate_steps: float | None = None
    slowdown: float | None = None
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides (tests train briefly)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def accuracy_at(acc_at: list[list[Any]], labels: int, tolerance: int) -> float | None:
    """Accuracy of the last model trained on at most ``labels`` labels, provided it had at
    least ``labels - tolerance``. ``acc_at`` holds [labels the model was trained on,
    accuracy]; a pipelined model is ``lookahead`` answers short of the batch boundary."""
    below = [(n, a) for n, a in acc_at if n <= labels and a is not None]
    return below[-1][1] if below and below[-1][0] >= labels - tolerance else None


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarise(runs: list[dict[str, Any]], tolerance: int = 0) -> dict[str, Any]:
    """One mode's figures over its runs (seeds pooled; accuracy averaged over seeds, at
    models trained on between n − ``tolerance`` and n labels)."""
    waits = [w for r in runs for w in r["wait_s"]]
    keys = [k for r in runs for k in r.get("keystroke_ms", [])]
    acc: dict[str, Any] = {}
    for n in ACC_AT:
        found = [accuracy_at(r["acc_at"], n, tolerance) for r in runs]
        values = [v for v in found if v is not None]
        if values and len(values) == len(found):
            # the labels each model was trained on: fewer than n when it chose ahead
            trained = [max(m for m, a in r["acc_at"] if m <= n and a is not None) for r in runs]
            acc[str(n)] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values), "labels": trained}
    return {
        "wait_s": {"median": _percentile(waits, 50), "p95": _percentile(waits, 95), "n": len(waits)},
        "keystroke_ms": {"median": _percentile(keys, 50), "p99": _percentile(keys, 99), "n": len(keys)},
        "rss_mib": max((r["rss_mib"] for r in runs), default=None),
        "acc_at": acc,
    }


def format_table(result: dict[str, Any]) -> str:
    """The printed comparison: one row per mode."""

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    head = f"{'mode':<10} {'wait med':>9} {'wait p95':>9} {'key p99':>9} {'peak RSS':>10} " + " ".join(
        f"{'acc@' + str(n):>9}" for n in (100, 200, 300)
    )
    lines = [head]
    for mode, s in result["modes"].items():
        acc = " ".join(
            f"{num(100 * s['acc_at'][str(n)]['mean'], '.1f') + '%':>9}" if str(n) in s["acc_at"] else f"{'-':>9}"
            for n in (100, 200, 300)
        )
        lines.append(
            f"{mode:<10} {num(s['wait_s']['median'], '.2f') + 's':>9} {num(s['wait_s']['p95'], '.2f') + 's':>9} "
            f"{num(s['keystroke_ms']['p99'], '.0f') + 'ms':>9} {num(s['rss_mib'], '.0f') + ' MiB':>10} {acc}"
        )
    return "\n".join(lines)
