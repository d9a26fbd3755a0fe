"""A member's socket dir (its actors' ipc sockets), held by one supervisor at a time.

The run dir's name comes from the data dir, so a second `petcd` on the same data dir
would find the first one's sockets there. The supervisor takes an exclusive flock on
`lock` beside the sockets (bus/addresses.py: socket_dir) before it forks any actor,
so the second one stops at once with a clear error instead of its actors failing
one by one on sockets in use. The actors inherit the lock: while any of them lives,
the dir stays taken. On the way out the holder removes the sockets and the dir, so
stopped members leave nothing in /tmp (a killed one leaves them to its next start,
which reuses the name).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Self

from .addresses import prepare_socket_dir, socket_dir

LOCK_NAME = "lock"
_CLAIM_TRIES = 3


class RunDirBusy(Exception):
    """Another live supervisor holds this run dir (the same data dir)."""


class RunDir:
    """`with RunDir.claim(run_dir):` its socket dir is ours, and is removed on exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd  # holds the flock until release()

    @classmethod
    def claim(cls, run_dir: Path) -> RunDir:
        path = Path(socket_dir(run_dir))
        for _ in range(_CLAIM_TRIES):
            prepare_socket_dir(str(path))
            fd = _locked(path / LOCK_NAME)
            if _same_file(fd, path / LOCK_NAME):
                return cls(path, fd)
            # The previous holder removed the dir between our open and our flock:
            # the lock we hold is on a deleted file. Try again on a fresh one.
            os.close(fd)
        raise RunDirBusy(f"{path} keeps being removed by another petcd of the same data dir")

    def release(self) -> None:
        """Remove the sockets, the lock and the dir, then let go of the lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _locked(lock: Path) -> int:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise RunDirBusy(f"{lock.parent} is held by another petcd of the same data dir") from None
        raise
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
