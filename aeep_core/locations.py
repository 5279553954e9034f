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
