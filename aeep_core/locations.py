"""Every filesystem location aeep-tui uses, in one place (platformdirs)."""

from __future__ import annotations

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
    import hashlib  # local: only project code needs it

    resolved = Path(data).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in resolved.name) or "root"
    return projects_dir() / f"{name}-{digest}"


def project_db(project: Path) -> Path:
    """The SQLite database of a project folder."""
    return Path(project) / PROJECT_DB


def project_lock(project: Path) -> Path:
    """The one-writer lock file of a project folder (holds the writer's pid and host)."""
    return Path(project) / "writer.lock"


def checkpoints_dir(project: Path) -> Path:
    """Model checkpoints of a project, next to its database."""
    return Path(project) / "checkpoints"
