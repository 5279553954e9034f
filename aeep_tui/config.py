"""The user's config file: defaults for ``label`` and ``demo``, the theme and the key map.

A TOML file in the platformdirs config folder (``aeep-tui config`` prints where). Flags
on the command line override it; it overrides the built-in defaults (those of
:class:`~aeep_core.session.ProjectSettings`). ``simulate`` and ``bench`` ignore it: an
experiment's settings are all on its command line. A malformed file or an unknown key
is a one-line error naming the file, the line where it can, and the fix.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aeep_core import locations
from aeep_tui.keys import CLASS_KEYS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the tomli marker dependency)
    import tomli as tomllib

DEVICES = ("auto", "cpu", "cuda", "mps")
#: what ``aeep-tui config --example`` prints and the README shows
EXAMPLE = """\
# aeep-tui settings. Flags on the command line win over these; delete a line to get
# the built-in default back.

device = "cpu"          # auto (cuda, then mps, then cpu), cpu, cuda, mps
batch_size = 16         # items per batch of a new project
strategy = "aeep"       # aeep, ee, random, em, kff, bmal, coreset, badge
theme = "gruvbox"       # any Textual theme; the command palette (ctrl+p, "theme") sets it too

# The key of a class, by its name or its index (from 0), for new projects. Keys are
# digits and lower-case letters other than h j k l s q g r (those move, skip, quit...).
[keys]
cat = "c"
dog = "d"
2 = "b"
"""


class ConfigError(ValueError):
    """A config file that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class Config:
    """The settings a config file gives (None: not set there)."""

    device: str | None = None
    batch_size: int | None = None
    strategy: str | None = None
    theme: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    path: Path | None = None


KNOWN = tuple(f.name for f in fields(Config) if f.name != "path")


def _line_of(text: str, key: str) -> str:
    """`` (line N)`` where ``key = ...`` is first written, or nothing."""
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*\"?{re.escape(key)}\"?\s*=", line):
            return f" (line {number})"
    return ""


def load_config(path: Path | None = None) -> Config:
    """The config at ``path`` (default :func:`aeep_core.locations.config_file`); an
    absent file is an empty config. Raises :class:`ConfigError`."""
    path = locations.config_file() if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc}); fix its permissions or delete it") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({exc}); fix that line (aeep-tui config --example shows a valid file)"
        ) from exc
    return _checked(raw, text, path)


def _checked(raw: dict[str, Any], text: str, path: Path) -> Config:
    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}{_line_of(text, key)}: {problem}")

    for key in raw:
        if key not in KNOWN:
            raise fail(key, f"unknown key {key!r}; the keys are {', '.join(KNOWN)} (delete or rename it)")
    device, batch, strategy, theme = (raw.get(k) for k in ("device", "batch_size", "strategy", "theme"))
    if device is not None and (not isinstance(device, str) or device.split(":")[0] not in DEVICES):
        raise fail("device", f"device = {device!r}; use one of {', '.join(DEVICES)}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 100):
        raise fail("batch_size", f"batch_size = {batch!r}; use a whole number from 1 to 100")
    if strategy is not None:
        from aeep_core.strategies import STRATEGIES

        if strategy not in STRATEGIES:
            raise fail("strategy", f"strategy = {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if theme is not None and not isinstance(theme, str):
        raise fail("theme", f'theme = {theme!r}; use a theme\'s name in quotes, e.g. "gruvbox"')
    keys = raw.get("keys", {})
    if not isinstance(keys, dict):
        raise fail("keys", 'keys must be a table: a [keys] section of class = "key" lines')
    for name, key in keys.items():
        if not isinstance(key, str) or key not in CLASS_KEYS:
            raise fail(
                name, f"[keys] {name} = {key!r}; a class key is one digit or a lower-case letter other than h j k l s q g r"
            )
    if len(set(keys.values())) != len(keys):
        raise ConfigError(f"{path}: [keys] gives one key to two classes; give each class its own key")
    return Config(device, batch, strategy, theme, {str(k): v for k, v in keys.items()}, path)


def apply_config(args: argparse.Namespace, config: Config, names: tuple[str, ...] = ("device", "batch_size", "strategy")) -> None:
    """Fill the flags the person did not give (None) from ``config``, else from the
    built-in defaults (:class:`~aeep_core.session.ProjectSettings`'s)."""
    from aeep_core.session import ProjectSettings

    builtin = {f.name: f.default for f in fields(ProjectSettings)}
    for name in names:
        if getattr(args, name, None) is None:
            value = getattr(config, name)
            setattr(args, name, value if value is not None else builtin[name])


def save_setting(key: str, value: str, path: Path | None = None) -> Path:
    """Set a top-level string ``key`` in the config file, keeping every other line and
    comment (the file is created when there is none). Returns the file's path."""
    path = locations.config_file() if path is None else Path(path)
    line = f"{key} = {_toml_string(value)}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    lines = text.splitlines()
    for i, old in enumerate(lines):
        if old.lstrip().startswith("["):  # a table begins: top-level keys end here
            lines.insert(i, line)
            break
        if re.match(rf"\s*{re.escape(key)}\s*=", old):
            lines[i] = line
            break
    else:
        lines.append(line)
    new = "\n".join(lines) + "\n"
    try:
        tomllib.loads(new)  # never write a file this module could not read back
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix it before {key} can be saved there") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)
    return path


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def key_map_for(classes: list[str], keys: Mapping[str, str]) -> dict[int, str]:
    """Class index -> key from a config key map, which names a class or its index."""
    out: dict[int, str] = {}
    for i, name in enumerate(classes):
        key = keys.get(name, keys.get(str(i)))
        if key is not None:
            out[i] = key
    return out
