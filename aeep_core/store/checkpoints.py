"""A project's model checkpoints: written atomically, read back only when their checksum
matches the database's record, loaded without running code from disk."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from aeep_core import locations


def write_checkpoint(project: Path, number: int, state: dict[str, Any]) -> tuple[str, str]:
    """Save the engine ``state`` (tensors and plain values, e.g. a learner's
    ``state_dict()``) that chose round ``number``: temp file, fsync, rename, fsync the
    folder. Return (path relative to the project, sha256) for the database to point at."""
    folder = locations.checkpoints_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"round-{number:05d}.pt"
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        torch.save({**state, "round": number}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    if hasattr(os, "O_DIRECTORY"):  # the rename itself is durable only once the folder is synced
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return f"{folder.name}/{final.name}", hashlib.sha256(final.read_bytes()).hexdigest()


def read_checkpoint(project: Path, file: str, sha256: str) -> dict[str, Any] | None:
    """The state saved in ``file`` if its bytes match ``sha256``; None when it is missing or
    damaged (the next round then trains afresh). ``weights_only``: tensors and plain
    containers only, never pickled code."""
    try:
        blob = (Path(project) / file).read_bytes()
        if hashlib.sha256(blob).hexdigest() != sha256:
            return None
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError):
        return None
    return state if isinstance(state, dict) else None


def prune_checkpoints(project: Path, keep: list[str]) -> None:
    """Delete the checkpoint files of ``project`` that are not in ``keep`` (relative paths)."""
    folder = locations.checkpoints_dir(project)
    for f in folder.iterdir() if folder.is_dir() else []:
        if f"{folder.name}/{f.name}" not in keep:
            f.unlink(missing_ok=True)
