"""The one-writer lock of a project: an OS file lock, so a killed writer never blocks.

The lock is ``flock`` (``msvcrt.locking`` on Windows) on a lock file that also holds
``pid host`` of the holder. The kernel drops the lock when the holder dies, even by
SIGKILL, so stale file content never blocks anyone; it only names the holder in the
message shown to a second process.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from aeep_core.store.errors import ProjectLocked

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def read_holder(path: Path) -> tuple[int | None, str | None]:
    """(pid, host) written by the process holding ``path``, or (None, None)."""
    try:
        parts = path.read_text().split()
        return int(parts[0]), (parts[1] if len(parts) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None, None


class WriterLock:
    """Held from :meth:`acquire` to :meth:`release` (or process exit)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        """Take the lock or raise :class:`ProjectLocked` naming the holder's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            pid, host = read_holder(self.path)
            who = f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "") if pid else "another process"
            raise ProjectLocked(
                f"{self.path.parent}: project is open in another aeep-tui process ({who}); "
                "close it there first (aeep-tui export reads its labels meanwhile)",
                pid=pid,
                host=host,
            )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (closing the descriptor releases it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)  # no stale pid left to confuse a reader
            except OSError:
                pass
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None
