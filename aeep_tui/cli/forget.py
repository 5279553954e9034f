"""``aeep-tui forget``: delete a project (its labels, rounds, checkpoints and the image
caches of its folders), after asking."""

from __future__ import annotations

import argparse
import shutil
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("forget", help="delete a labelling project (asks first; the data folder is not touched)")
    p.add_argument("target", metavar="PROJECT", help="the project's name, its folder, or its data folder")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aeep_core import locations
    from aeep_core.store import StoreError
    from aeep_core.store.catalog import resolve_project, summary
    from aeep_core.store.lock import WriterLock

    try:
        project = resolve_project(args.target)
        s = summary(project)
    except StoreError as exc:
        print(f"aeep-tui: error: {exc}", file=sys.stderr)
        return 2
    if not args.yes:
        prompt = (
            f"Forget project {s['name']} ({s['labelled']} labels in {s['rounds']} rounds, data {s['data_path']})?\n"
            f"This deletes {project}; export the labels first if you need them. [y/N] "
        )
        print(prompt, end="", flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("kept")
            return 0
    try:
        # Hold the writer lock while deleting, so an open labelling app is never pulled from under.
        lock = WriterLock(locations.project_lock(project)).acquire()
    except StoreError as exc:
        print(f"aeep-tui: error: {exc}", file=sys.stderr)
        return 2
    try:
        shutil.rmtree(project)
        for folder in filter(None, (s["data_path"], s["test_path"])):
            for cache in locations.image_caches(folder):
                cache.unlink(missing_ok=True)
    finally:
        lock.release()
    print(f"forgot {s['name']} ({project})")
    return 0
