"""Reader for the IDX format of the MNIST files (``*-idx3-ubyte[.gz]``, ``*-idx1-ubyte[.gz]``)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from aeep_core.pool import DataError

_DTYPES: dict[int, type | str] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_PATTERN = re.compile(r"^(?P<stem>.+)-idx(?P<rank>[13])-ubyte(?:\.gz)?$")


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip or plain) into an array; raise :class:`DataError` if malformed."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc}); re-download or remove it") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number); remove it or rename it")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header is truncated; re-download the file")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{path}: IDX body holds {len(data) - header} bytes, header promises {expected}; "
            "the file is truncated or corrupt, re-download it"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx_pairs(folder: Path) -> dict[str, tuple[Path, Path | None]]:
    """Map a split name ('train', 't10k', …) to its (images, labels-or-None) files."""
    images: dict[str, Path] = {}
    labels: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        m = IDX_PATTERN.match(p.name)
        if not m or not p.is_file():
            continue
        split = m["stem"].split("-")[0]
        (images if m["rank"] == "3" else labels)[split] = p
    return {split: (img, labels.get(split)) for split, img in images.items()}
