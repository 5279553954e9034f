"""A million photos (issue 28): the feature store, the first batch and a round at 10^4..10^6.

    python benchmarks/scale.py --sizes 10000 100000 1000000

Each size runs in its own process (so peak RSS is that size's), on synthetic features
(10 Gaussian classes in 1,600 dimensions, float16, written once into a feature store under
``--work``) and a synthetic file listing (names and stat results, not files):

- ``write``: filling the store chunk by chunk (what embedding pays on top of the network);
- ``open``: the listing's keys, opening the store (reading its index) and ``rows_for``;
- ``first batch``: k-means++ on the first 2,000 stored rows (the progressive pool's
  first slice) choosing k = 10;
- ``round``: the photo head trained on L (20 labels + 10 a round) and AEEP choosing 10
  among ``--candidates`` unlabelled items read from the store (``ActiveLearner.train`` +
  ``propose``), median of ``--rounds``;
- ``items``: ``store.items.sync_items`` of a project on real files (``--items-files``
  small files, content-hashed as the project store does), first open and reopen.

Peak RSS is the process's ``ru_maxrss``. Writes a table and
``benchmarks/results/scale/scale.json``; embedding images/s per backend come from
``benchmarks/embedding_backends.py`` (its JSON is folded into the table when present).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "scale"
DIM, CLASSES, CHUNK = 1600, 10, 65_536


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _listing(n: int) -> tuple[list[str], list[str]]:
    """A synthetic folder: names and the store keys of their (path, size, mtime)."""
    from aeep_core.data.features import _identity_key

    names = [f"class{i % CLASSES}/photo-{i:07d}.jpg" for i in range(n)]
    keys = [
        _identity_key(f"/data/photos/{name}".encode(), 50_000 + i, 1_700_000_000_000_000_000 + i) for i, name in enumerate(names)
    ]
    return names, keys


def build_store(stem: Path, n: int, keys: list[str]) -> float:
    """Write n synthetic rows (class i % 10 around its own centre) in chunks; seconds."""
    from aeep_core.data.feature_store import open_store

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (CLASSES, DIM)).astype(np.float32)
    start = time.perf_counter()
    with open_store(stem, dim=DIM, dtype="float16", writable=True, meta={"backbone": "synthetic"}) as store:
        for first in range(len(store), n, CHUNK):
            m = min(CHUNK, n - first)
            cls = np.arange(first, first + m) % CLASSES
            rows = centres[cls] + rng.standard_normal((m, DIM), dtype=np.float32) * 2.0
            store.append(keys[first : first + m], np.abs(rows))  # features are >= 0 (ReLU6)
    return time.perf_counter() - start


def measure(stem: Path, n: int, rounds: int, candidates: int, cold: bool = False, runs: bool = False) -> dict:
    """One size, in this process: open, first batch, rounds, peak RSS. ``cold``: the
    store's rows are dropped from the page cache before each round (as after a reboot, or
    when other files pushed them out); ``runs``: the pool is in a random order (as a photo
    project's), so the learner draws its candidates as runs of rows."""
    import torch
    from sklearn.cluster import kmeans_plusplus

    from aeep_core.data.feature_store import StoreRows, open_store
    from aeep_core.learning.learner import ActiveLearner
    from aeep_core.pool import Pool
    from aeep_core.strategies import make_strategy

    torch.set_num_threads(1)  # as the app trains: one thread, the other core for the UI
    out: dict = {"n": n, "rss_start_mib": _rss_mib()}
    t = time.perf_counter()
    names, keys = _listing(n)
    out["listing_s"] = time.perf_counter() - t
    t = time.perf_counter()
    store = open_store(stem)
    rows = store.rows_for(keys)
    out["open_s"] = time.perf_counter() - t
    out["rss_after_open_mib"] = _rss_mib()
    assert (rows >= 0).all()
    t = time.perf_counter()
    first = store.read(np.arange(min(2000, n)))
    _, picks = kmeans_plusplus(first, 10, random_state=0)
    out["first_batch_s"] = time.perf_counter() - t
    out["rss_after_first_batch_mib"] = _rss_mib()
    truth = np.arange(n) % CLASSES
    pool = Pool(
        inputs=StoreRows(store, rows),  # type: ignore[arg-type]  # duck-typed tensor of rows
        names=names,
        class_names=[f"class{c}" for c in range(CLASSES)],
        labels=None,
        modality="features",
        meta={"random_order": runs},
    )
    learner = ActiveLearner(pool, make_strategy("aeep"), device="cpu", seed=0, candidates=candidates)
    rng = np.random.default_rng(0)
    start_ids = rng.choice(n, 20, replace=False)
    learner.add_labels(start_ids, truth[start_ids])
    times, train_s, choose_s = [], [], []
    for _ in range(rounds):
        if cold:
            fd = os.open(f"{stem}.rows", os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        t = time.perf_counter()
        learner.train()
        t1 = time.perf_counter()
        proposal = learner.propose(10)
        t2 = time.perf_counter()
        times.append(t2 - t)
        train_s.append(t1 - t)
        choose_s.append(t2 - t1)
        learner.teach(proposal, truth[proposal.ids])
    out.update(
        round_s=float(np.median(times)),
        train_s=float(np.median(train_s)),
        choose_s=float(np.median(choose_s)),
        rounds=times,
        candidates=min(candidates, n),
        cold=cold,
        runs=runs,
        peak_rss_mib=_rss_mib(),
        store_bytes=os.path.getsize(f"{stem}.rows") + os.path.getsize(f"{stem}.index"),
    )
    return out


def measure_items(root: Path, n: int) -> dict:
    """sync_items on n real small files: a new project's first open, then a reopen."""
    from aeep_core.pool import Pool
    from aeep_core.store.db import Store
    from aeep_core.store.items import sync_items

    files = root / f"files-{n}"
    if not files.is_dir():
        tmp = root / f"files-{n}.tmp"
        for i in range(n):
            d = tmp / f"d{i // 10_000:03d}"
            if i % 10_000 == 0:
                d.mkdir(parents=True, exist_ok=True)
            (d / f"{i:07d}.jpg").write_bytes(i.to_bytes(8, "little") * 512)  # 4 KiB, unique
        tmp.rename(files)
    import torch

    from aeep_core.data.features import file_key
    from aeep_core.data.images import list_image_files

    t = time.perf_counter()
    listed = list_image_files(files)  # what opening a photo folder does first:
    keys = [file_key(p) for p in listed]  # list it, and key every file by its identity
    listing_s = time.perf_counter() - t
    assert len(keys) == n
    paths = [str(p) for p in listed]

    pool = Pool(
        inputs=torch.zeros((n, 1)),
        names=[os.path.relpath(p, files) for p in paths],
        class_names=["a", "b"],
        modality="features",
        meta={"paths": paths},
    )
    out: dict = {"n": n, "listing_and_keys_s": listing_s}
    with tempfile.TemporaryDirectory(dir=root) as project:
        store = Store.create(Path(project), {"classes": ["a", "b"]})
        t = time.perf_counter()
        sync_items(store, pool)
        out["first_open_s"] = time.perf_counter() - t
        t = time.perf_counter()
        _, drift = sync_items(store, pool)
        out["reopen_s"] = time.perf_counter() - t
        assert not drift.any
        store.close()
    out["peak_rss_mib"] = _rss_mib()
    return out


def measure_hashing(data: Path, n: int) -> dict:
    """Keying by identity (stat) against by content (sha256 of every byte, what the
    project's items table does on first open), per file on real photos (warm page cache),
    and what each costs at ``n`` files of that mean size."""
    from aeep_core.data.features import file_key
    from aeep_core.data.images import list_image_files
    from aeep_core.store.items import file_sha256

    paths = list_image_files(data)
    if not paths:
        return {}
    for p in paths:
        p.read_bytes()  # warm the page cache: the disk's own speed is not what is compared
    t = time.perf_counter()
    for p in paths:
        file_key(p)
    stat_s = (time.perf_counter() - t) / len(paths)
    t = time.perf_counter()
    for p in paths:
        file_sha256(p)
    hash_s = (time.perf_counter() - t) / len(paths)
    mean_bytes = sum(p.stat().st_size for p in paths) / len(paths)
    return {
        "files": len(paths),
        "mean_kib": mean_bytes / 1024,
        "identity_key_us": stat_s * 1e6,
        "sha256_us": hash_s * 1e6,
        "sha256_mib_s": mean_bytes / hash_s / 2**20,
        f"identity_at_{n}_s": stat_s * n,
        f"sha256_at_{n}_s": hash_s * n,
    }


def compare_runs(a: Path, b: Path) -> dict:
    """Two bench ``.partial`` files of the same runs (e.g. float32 against float16
    features): per seed accuracy at the last round and averaged over the curve, and the
    paired differences b - a (mean and standard error)."""

    def load(path: Path) -> dict[int, list[float]]:
        runs = [json.loads(line)["run"] for line in path.read_text().splitlines() if line.strip()]
        return {r["seed"]: [x["accuracy"] for x in r["rounds"]] for r in runs}

    ra, rb = load(a), load(b)
    seeds = sorted(set(ra) & set(rb))
    out: dict = {"seeds": seeds, "a": str(a), "b": str(b)}
    for name, fn in (("final", lambda c: c[-1]), ("curve_mean", lambda c: float(np.mean(c)))):
        xa = np.array([fn(ra[s]) for s in seeds]) * 100
        xb = np.array([fn(rb[s]) for s in seeds]) * 100
        d = xb - xa
        out[name] = {
            "a_mean": float(xa.mean()),
            "b_mean": float(xb.mean()),
            "diff_mean": float(d.mean()),
            "diff_se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0,
            "identical_seeds": int((np.abs(d) < 1e-9).sum()),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--items-sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--candidates", type=int, default=10_000, help="the learner's default")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "aeep-scale")
    ap.add_argument("--json", type=Path, default=RESULTS / "scale.json")
    ap.add_argument("--photos", type=Path, default=Path("../shared/data/photos/flowers"), help="real photos for hashing")
    ap.add_argument("--compare", type=Path, nargs=2, metavar=("A", "B"), help="compare two bench .partial files and stop")
    ap.add_argument("--cold", action="store_true", help="drop the store from the page cache before each round")
    ap.add_argument("--runs", action="store_true", help="a pool in random order: candidates drawn as runs of rows")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size here
    ap.add_argument("--one-items", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.compare:
        print(json.dumps(compare_runs(*args.compare), indent=1))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    if args.one is not None:
        print(json.dumps(measure(args.work / f"store-{args.one}", args.one, args.rounds, args.candidates, args.cold, args.runs)))
        return 0
    if args.one_items is not None:
        print(json.dumps(measure_items(args.work, args.one_items)))
        return 0
    from benchmarks.embedding_backends import cpu_name

    results: dict = {"cpu": cpu_name(), "sizes": [], "items": []}
    if args.photos.is_dir():
        results["hashing"] = h = measure_hashing(args.photos, 100_000)
        print(
            f"keys of {h['files']} photos ({h['mean_kib']:.0f} KiB mean): identity {h['identity_key_us']:.0f} us/file, "
            f"sha256 {h['sha256_us']:.0f} us/file ({h['sha256_mib_s']:.0f} MiB/s); at 10^5 files "
            f"{h['identity_at_100000_s']:.1f} s against {h['sha256_at_100000_s']:.0f} s"
        )
    for n in args.sizes:
        stem = args.work / f"store-{n}"
        if not Path(f"{stem}.meta.json").is_file() or _stored(stem) < n:
            write_s = build_store(stem, n, _listing(n)[1])
            results.setdefault("write_s", {})[str(n)] = write_s
        how = ["--cold"] * args.cold + ["--runs"] * args.runs
        row = _child(["--one", str(n), "--rounds", str(args.rounds), "--candidates", str(args.candidates), *how], args.work)
        results["sizes"].append(row)
        print(
            f"n={n:>9,}: open {row['open_s']:.2f} s (listing {row['listing_s']:.2f} s), first batch "
            f"{row['first_batch_s']:.2f} s, round {row['round_s']:.2f} s (train {row['train_s']:.2f} + choose "
            f"{row['choose_s']:.2f}), peak RSS {row['peak_rss_mib']:.0f} MiB"
        )
    for n in args.items_sizes:
        row = _child(["--one-items", str(n)], args.work)
        results["items"].append(row)
        print(
            f"items n={n:>9,}: listing + keys {row['listing_and_keys_s']:.2f} s, items first open "
            f"{row['first_open_s']:.2f} s, reopen {row['reopen_s']:.2f} s"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    return 0


def _stored(stem: Path) -> int:
    from aeep_core.data.feature_store import open_store

    return len(open_store(stem))


def _child(extra: list[str], work: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--work", str(work), *extra], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    raise SystemExit(main())
