"""``aeep-tui predict MODEL FILES|DIR``: an exported model's class and confidence per file."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path

BATCH = 256


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files with a model from 'aeep-tui model export'")
    p.add_argument("model", type=Path, metavar="MODEL", help="a model file written by 'aeep-tui model export'")
    p.add_argument("inputs", type=Path, nargs="+", metavar="FILES|DIR", help="image files, or folders (searched recursively)")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="csv (default) or jsonl, on standard output")
    p.set_defaults(run=run)


def _files(inputs: list[Path]) -> list[Path]:
    from aeep_core.data.images import list_image_files
    from aeep_core.pool import DataError

    found: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found += list_image_files(p)
        elif p.is_file():
            found.append(p)
        else:
            raise DataError(f"{p}: no such file or folder; check the path")
    return found


class _Progress:
    """'predicted N/M' on standard error for large inputs: one updating line on a
    terminal, a line every tenth otherwise (logs stay short)."""

    def __init__(self, total: int):
        self.total, self.tty, self.shown = total, sys.stderr.isatty(), 0
        self.active = total > BATCH
        self.last = 0.0

    def __call__(self, done: int) -> None:
        if not self.active:
            return
        if self.tty:
            if time.monotonic() - self.last > 0.2 or done == self.total:
                self.last = time.monotonic()
                end = "\n" if done == self.total else ""
                print(f"\rpredicted {done}/{self.total} files", end=end, file=sys.stderr, flush=True)
        elif done * 10 // self.total > self.shown or done == self.total:
            self.shown = done * 10 // self.total
            print(f"predicted {done}/{self.total} files", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from aeep_core.data.backbones import Preprocessing
    from aeep_core.data.features import photo_array
    from aeep_core.data.images import ModelShape, decode_image
    from aeep_core.learning.portable import load_model, predict_probabilities

    module, meta = load_model(args.model)
    shape = ModelShape(int(meta["input"]["channels"]), int(meta["input"]["size"]))
    # the exported photo model normalises itself: only the crop size matters here
    photo = Preprocessing(shape.size, (0, 0, 0), (1, 1, 1)) if meta["input"].get("fit") == "centre-crop" else None

    def decode(f: Path) -> np.ndarray:
        """The input the model was exported for: a centre-cropped photo, or the pool's decoding."""
        return photo_array(f, photo) if photo is not None else decode_image(f, shape)

    classes = meta["classes"]
    files = _files(args.inputs)
    out = sys.stdout.buffer

    def emit(rows: list[dict], header: bool = False) -> None:
        if args.format == "jsonl":
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=("item", "class", "confidence"), lineterminator="\n")
            if header:
                w.writeheader()
            w.writerows(rows)
            text = buf.getvalue()
        # surrogateescape: a file name that is not valid UTF-8 is written as its own bytes
        out.write(text.encode("utf-8", "surrogateescape"))
        out.flush()

    progress, bad = _Progress(len(files)), 0
    if not files:
        print("aeep-tui: no image files found in the given paths", file=sys.stderr)
        return 2
    if args.format == "csv":
        emit([], header=True)
    for start in range(0, len(files), BATCH):
        chunk, arrays = [], []
        for f in files[start : start + BATCH]:
            try:
                arrays.append(decode(f))
                chunk.append(f)
            except (OSError, ValueError) as exc:
                bad += 1
                name = os.fsencode(f).decode("utf-8", "backslashreplace")  # printable even if not UTF-8
                print(f"aeep-tui: skipped {name}: {exc}; replace or remove the file", file=sys.stderr)
        if chunk:
            probs = predict_probabilities(module, torch.from_numpy(np.stack(arrays)))
            emit(
                [
                    {"item": str(f), "class": classes[int(p.argmax())], "confidence": round(float(p.max()), 6)}
                    for f, p in zip(chunk, probs)
                ]
            )
        progress(min(start + BATCH, len(files)))
    return 0 if bad < len(files) else 2
