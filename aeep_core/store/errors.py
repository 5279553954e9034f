"""Errors of the project store; each message is one line naming the file and the fix."""

from __future__ import annotations


class StoreError(Exception):
    """A project database that cannot be used (corrupt, foreign, too new, disk full…)."""


class ProjectLocked(StoreError):
    """Another process holds the project's writer lock; ``pid`` names it (None if unknown)."""

    def __init__(self, message: str, pid: int | None = None, host: str | None = None):
        super().__init__(message)
        self.pid, self.host = pid, host
