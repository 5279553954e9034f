"""Which key labels which class: 1–9, 0, then letters the labelling screen leaves free."""

from __future__ import annotations

import string
from collections.abc import Collection, Mapping

# Letters the labelling screen already uses (hjkl move, s skip, q quit, g guesses,
# r retry): a class never gets one of them.
RESERVED_LETTERS = set("hjklsqgr")
CLASS_KEYS = list("1234567890") + [c for c in string.ascii_lowercase if c not in RESERVED_LETTERS]


def assign_keys(classes: list[str], preferred: Mapping[int, str] | None = None) -> list[str]:
    """One key per class: 1–9, 0, then free letters, in class order.

    ``preferred`` (class index -> key, the config file's key map) comes first; then a
    class named by a single free key keeps that key (digit classes "0".."9" are typed
    as themselves, not shifted by one); raises ValueError past the number of free keys.
    """
    if len(classes) > len(CLASS_KEYS):
        raise ValueError(f"at most {len(CLASS_KEYS)} classes can have a key, got {len(classes)}")
    keys: list[str | None] = [None] * len(classes)
    for i, key in (preferred or {}).items():
        if 0 <= i < len(classes) and key in CLASS_KEYS and key not in keys:
            keys[i] = key
    for i, name in enumerate(classes):
        if keys[i] is not None:
            continue
        if name.lower() in CLASS_KEYS and name.lower() not in keys:
            keys[i] = name.lower()
    free = iter(k for k in CLASS_KEYS if k not in keys)
    return [key if key is not None else next(free) for key in keys]


def key_for_new_class(name: str, taken: Collection[str], preferred: str | None = None) -> str:
    """The key of a class added while labelling, by :func:`assign_keys`'s rules with the
    keys of the project's classes ``taken``: ``preferred`` (the config's key map) when free,
    else the name itself when it is a single free key, else the first free key. Raises
    ValueError when every key is taken."""
    for key in (preferred, name.lower()):
        if key in CLASS_KEYS and key not in taken:
            return key
    free = next((k for k in CLASS_KEYS if k not in taken), None)
    if free is None:
        raise ValueError(f"every one of the {len(CLASS_KEYS)} class keys is taken; merge classes to free one")
    return free


def parse_classes(text: str) -> list[str]:
    """Class names from ``a, b, c`` or one per line; blanks dropped, order kept, no repeats."""
    names: list[str] = []
    for part in text.replace("\n", ",").split(","):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names


def describe_keys(keys: list[str]) -> str:
    """Compact footer text for a run of keys, e.g. ``1-9 0 a-c``."""
    runs: list[list[str]] = []
    for key in keys:
        if runs and ord(key) == ord(runs[-1][-1]) + 1:
            runs[-1].append(key)
        else:
            runs.append([key])
    return " ".join(r[0] if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
