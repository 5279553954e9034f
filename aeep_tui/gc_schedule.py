"""Full garbage collections while the person waits for a batch, never mid-keystroke.

CPython's cyclic collector runs a full (oldest-generation) pass whenever enough objects
have survived into the oldest generation. With torch, a 60,000-item pool and a screen of
twenty rendered images that is over half a million objects, and one pass holds the GIL
for 200-400 ms: in the latency bench those passes were the slowest keystrokes, growing
with the session. So the app:

- freezes what exists once the project is open (modules, the pool, the store: they live
  as long as the app), so no later pass scans them again;
- keeps CPython's automatic young-generation passes (a few ms) but not the full ones;
- runs the full pass itself once per batch, just after the next batch is shown, while
  the person reads it (after Enter it would hold up a batch chosen ahead);
- puts CPython's own schedule back when the project closes (tests and the latency bench
  run several apps in one process).
"""

from __future__ import annotations

import gc

# a generation-2 threshold no session reaches: automatic full passes never start
NEVER = 2**30


def defer_full_collections() -> tuple[int, int, int]:
    """Freeze the long-lived objects and leave full passes to :func:`collect_between_batches`;
    return the thresholds to give back to :func:`restore_full_collections`."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(before[0], before[1], NEVER)
    return before


def restore_full_collections(thresholds: tuple[int, int, int]) -> None:
    """Undo :func:`defer_full_collections`."""
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def collect_between_batches() -> None:
    """One full pass over everything created since the project opened (or the last pass)."""
    gc.collect()
