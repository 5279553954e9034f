"""Finding projects without opening them for labelling: listing, resolving a name, summaries.

Read-only connections, no writer lock: works while the labelling app has a project open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aeep_core import locations
from aeep_core.store.db import Store
from aeep_core.store.errors import StoreError


def all_projects() -> list[Path]:
    """Project folders under the user data directory, by name."""
    root = locations.projects_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if locations.project_db(p).is_file())


def resolve_project(target: str | Path) -> Path:
    """A project folder from a project folder, a data folder, or a project's name."""
    path = Path(target).expanduser()
    if locations.project_db(path).is_file():
        return path
    if path.is_dir() and locations.project_db(locations.project_folder(path)).is_file():
        return locations.project_folder(path)
    named = [p for p in all_projects() if p.name == str(target)]
    if not named:
        for p in all_projects():
            try:
                if summary(p)["name"] == str(target):
                    named.append(p)
            except StoreError:
                continue
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise StoreError(f"{target}: several projects have this name ({', '.join(p.name for p in named)}); give the folder")
    raise StoreError(f"{target}: no project found (give a data folder, a project folder, or a name from 'aeep-tui projects')")


def summary(project: Path) -> dict[str, Any]:
    """name, data_path, test_path (None without one), labelled (current answers other than
    skip), total (present items), rounds (confirmed), last_opened (epoch seconds) of one project."""
    store = Store.open(project, read_only=True)
    try:
        counts = store.counts()
        return {
            "name": store.setting("name", project.name),
            "data_path": store.setting("data_path"),
            "test_path": (store.setting("project") or {}).get("test_dir"),
            "labelled": counts["labelled"],
            "total": counts["present"],
            "rounds": counts["rounds_done"],
            "last_opened": store.setting("last_opened"),
        }
    finally:
        store.close()
