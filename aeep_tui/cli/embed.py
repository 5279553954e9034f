"""``aeep-tui embed DATA``: fill a photo folder's feature store ahead of labelling, here
(with a progress line) or on a Ray cluster (``--ray``)."""

from __future__ import annotations

import argparse
import sys
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="embed a photo folder into its feature store before labelling (locally or on a Ray cluster)",
        description=(
            "Compute the backbone features of every photo in DATA that its feature store lacks, chunk by chunk "
            "(interrupt and run again: it resumes). `aeep-tui label DATA` then starts from the store."
        ),
    )
    p.add_argument("data", metavar="DATA", help="a folder of photos (class subfolders or not)")
    p.add_argument("--backbone", default="auto", help="efficientnet-lite0, efficientnet-lite1, or auto (default)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"), help="how the network runs")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="embed on a Ray cluster: alone, a local one on this machine's cores; 'auto', the cluster this "
        "machine belongs to; ray://HEAD:10001, a remote one (files must be at the same paths on its workers)",
    )
    p.add_argument("--task-gpus", type=float, default=0.0, help="GPUs per Ray actor (0: CPU actors)")
    p.add_argument("--actors", type=int, default=None, help="Ray actors holding the backbone (default: fill the cluster)")
    p.add_argument("--chunk", type=int, default=256, help="photos per stored chunk (what an interruption may lose)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aeep_core import locations
    from aeep_core.data.backbones import is_backbone, unknown_backbone
    from aeep_core.data.embedders import load_embedder
    from aeep_core.data.features import choose_backbone, embed_into_store, open_feature_store
    from aeep_core.data.images import list_image_files
    from aeep_core.data.progressive import seeded_order
    from aeep_core.pool import DataError

    folder = Path(args.data).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; point embed to a folder of photos")
    # In a seeded random order, as a project embeds them: an embedding stopped half-way
    # leaves an unbiased sample of the folder for the first rounds to choose from.
    paths = seeded_order(folder, list_image_files(folder), 0)
    if not paths:
        raise DataError(f"{folder}: no images found; point embed to a folder of photos")
    backbone = choose_backbone(paths) if args.backbone == "auto" else args.backbone
    if backbone == "cnn" or not is_backbone(backbone):
        raise DataError(
            f"{folder}: small grey images train the CNN on pixels, nothing to embed; use --backbone efficientnet-lite1"
            if backbone == "cnn"
            else unknown_backbone(backbone)
        )
    if args.chunk < 1 or args.task_gpus < 0:
        raise DataError("--chunk must be at least 1 and --task-gpus not negative")
    stem = locations.feature_store(folder, backbone)
    embedder = load_embedder(backbone, backend=args.backend) if args.ray is None else None
    store = open_feature_store(stem, backbone, embedder or load_embedder(backbone, backend="torch", device="cpu"))
    bar = _Progress(len(paths))
    try:
        if args.ray is None:
            report = embed_into_store(paths, store, embedder or backbone, chunk=args.chunk, progress=bar)
        else:
            from aeep_core.data.ray_embed import embed_with_ray

            report = embed_with_ray(
                paths,
                store,
                backbone,
                address=args.ray or None,
                task_gpus=args.task_gpus,
                actors=args.actors,
                backend=args.backend,
                chunk=args.chunk,
                progress=bar,
            )
    finally:
        store.close()
        bar.end()
    print(
        f"{folder}: {report.embedded} photos embedded, {report.present} already stored, "
        f"{len(report.skipped)} skipped ({backbone}; store {stem}.rows)"
    )
    for s in report.skipped[:5]:
        print(f"  skipped {s}")
    return 0


class _Progress:
    """One line on stderr: embedded X of N, the rate and the time left."""

    def __init__(self, total: int):
        self.total, self.start = total, time.monotonic()
        self.first: tuple[int, float] | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (done, now)
            rate = 0.0
        else:
            rate = (done - self.first[0]) / max(now - self.first[1], 1e-9)
        left = f", {(total - done) / rate:.0f} s left" if rate > 0 else ""
        print(f"\rembedded {done:,} of {total:,} ({rate:.1f} images/s{left})   ", end="", file=sys.stderr, flush=True)

    def end(self) -> None:
        print(file=sys.stderr)
