"""Every ``--flag`` a message names exists: an error that suggests a flag the command line
does not have sends the person nowhere (the store once suggested ``--project-dir``)."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from aeep_tui.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def cli_flags() -> set[str]:
    """Every long option of ``aeep-tui`` and of each of its sub-commands."""
    found: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            found.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return found


# Flags of other programs that a message may name (how to delegate a cgroup).
FOREIGN = {"--privileged": "docker run", "--user": "systemd-run"}


def declared_flags() -> set[str]:
    """The long options every argparse parser of the project declares: the module CLIs
    (``python -m aeep_core.bench.slow_machine``) and the benchmark scripts have their own."""
    found: set[str] = set()
    files = [f for package in ("aeep_core", "aeep_tui") for f in (ROOT / package).rglob("*.py")]
    for file in files + sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                found.update(a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--"))
    return found


def flags_in_strings() -> dict[str, list[str]]:
    """flag -> the places (file:line) of every string literal in the packages that names it
    (f-strings included: their literal parts are string constants too)."""
    places: dict[str, list[str]] = {}
    for package in ("aeep_core", "aeep_tui"):
        for file in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    for flag in FLAG.findall(node.value):
                        places.setdefault(flag, []).append(f"{file.relative_to(ROOT)}:{node.lineno}")
    return places


def test_every_flag_a_message_names_exists():
    known = cli_flags() | declared_flags() | set(FOREIGN)
    named = flags_in_strings()
    missing = {flag: where for flag, where in named.items() if flag not in known}
    assert not missing, f"messages name flags the CLI does not have: {missing}"
    assert {"--test", "--budget", "--classes"} <= set(named)  # the scan does find real ones


def test_no_message_suggests_a_read_only_mode_the_cli_lacks():
    """No command opens a project read-only on request, so no message may tell the person to."""
    offenders = []
    for package in ("aeep_core", "aeep_tui"):
        for file in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if re.search(r"open (this one|it) read-only|without read-only|--read-only", node.value):
                        offenders.append(f"{file.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not offenders, offenders
