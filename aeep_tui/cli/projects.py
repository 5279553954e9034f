"""``aeep-tui projects``: every labelling project of this user, with its progress."""

from __future__ import annotations

import argparse
import sys
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("projects", help="list labelling projects (name, data, labelled/total, rounds, last opened)")
    p.set_defaults(run=run)


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def run(args: argparse.Namespace) -> int:
    from aeep_core import locations
    from aeep_core.store import StoreError
    from aeep_core.store.catalog import all_projects, summary

    projects = all_projects()
    if not projects:
        print(f"no projects yet (they live in {locations.projects_dir()}); start one with 'aeep-tui label DATA'")
        return 0
    rows = [("NAME", "LABELLED/TOTAL", "ROUNDS", "LAST OPENED", "DATA")]
    for project in projects:
        try:
            s = summary(project)
            rows.append((s["name"], f"{s['labelled']}/{s['total']}", str(s["rounds"]), _when(s["last_opened"]), s["data_path"]))
        except StoreError as exc:  # one bad project must not hide the others
            rows.append((project.name, "-", "-", "-", f"unreadable: {exc}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    print(f"({len(projects)} project{'s' if len(projects) != 1 else ''} in {locations.projects_dir()})", file=sys.stderr)
    return 0
