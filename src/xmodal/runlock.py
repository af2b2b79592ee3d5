"""An exclusive lock on a run folder, so two runs never write into the same folder.

The lock is an OS file lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on ``FOLDER/.lock``,
taken before the run writes anything and released when the run ends. The operating system drops it
when the process dies, so a folder whose run was killed (``kill -9``, power loss) is free again at
once: there is no stale lock to clean up. The file names the holder (pid, host, start time, command)
so that a refused run can say who holds the folder.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from xmodal.errors import XmodalError

__all__ = ["RunLock", "LOCK_NAME"]

LOCK_NAME = ".lock"


class RunLock:
    """``with RunLock(folder): ...`` holds ``folder`` exclusively (the folder is created if absent).

    Raises:
        XmodalError: the folder cannot be created or written, or another live process holds it (the
            message names that process).
    """

    def __init__(self, folder: str | Path, what: str = "run folder") -> None:
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if self.folder.exists() and not self.folder.is_dir():
            raise XmodalError(f"{self.what} {self.folder} is a file, not a folder; choose another path")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise XmodalError(f"cannot write to {self.what} {self.folder} ({exc.strerror}); choose a folder you "
                              "can write to") from None
        if not _try_lock(fd):
            holder = _read_holder(fd)
            os.close(fd)
            raise XmodalError(f"{self.what} {self.folder} is in use by another run ({holder}); wait for it to "
                              "finish, or choose another folder")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}: {info.get('command', '')}"


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1 << 20)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1 << 20)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
