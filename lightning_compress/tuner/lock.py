"""``SweepLock``: one tuner per sweep folder.

Two tuners on one ``out_dir`` (e.g. two ``lightning-compress tune --resume``) would each re-queue the other's
running trials, run them twice in the same run directory and write different ``best_config.yaml`` files. The
lock is ``fcntl.flock`` on ``out_dir/sweep.lock``, which holds the owner's pid; the kernel releases it when the
owning process exits or dies (even with ``kill -9``), so a crashed sweep never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["SweepLock", "SweepLockedError"]


class SweepLockedError(RuntimeError):
    """Another live process holds the sweep folder's lock."""


class SweepLock:
    """Exclusive lock on a sweep folder, held from :meth:`acquire` until :meth:`release` or process exit.

    Args:
        out_dir: The sweep folder; the lock file is ``out_dir/sweep.lock``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder, SweepLock(folder):
        ...     try:
        ...         SweepLock(folder).acquire()
        ...     except SweepLockedError:
        ...         print("taken: the error names our pid")
        taken: the error names our pid
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / "sweep.lock"
        self._fd: int | None = None

    def acquire(self) -> SweepLock:
        """Take the lock (never waits); raises :class:`SweepLockedError` with the holder's pid if it is taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SweepLockedError(
                f"{self.path.parent} is in use by another tuner (pid {holder}, lock file {self.path}). Wait for it "
                f"to finish or stop it (kill {holder}), or give this sweep another out_dir."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (the file stays; an unlocked file with a stale pid means nothing)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
