"""Atomic file writes: a kill at any moment leaves either the old file or the new one."""
from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`, fsync the folder.

    `mode` is applied before any byte is written, so private keys (0o600) are never readable by others.
    """
    path = Path(path)
    try:
        _write_and_rename(path, data, mode)
    except OSError as exc:    # name the file the caller wrote, not our temp file
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None


def _write_and_rename(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DataDirLock:
    """An exclusive lock on a data folder for the life of one router (fcntl.flock on DATADIR/lock).

    The kernel drops it when the process ends, kill -9 included, so a stale lock never blocks a start.
    """

    def __init__(self, datadir: str | os.PathLike):
        self.path = Path(datadir) / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises DataDirInUse when another process holds the folder."""
        import fcntl
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise DataDirInUse(f"{self.path.parent} is in use by another pyi2p (pid {holder or '?'}); "
                               "stop it first, or give another --datadir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)          # closing drops the flock
            self._fd = None


class DataDirInUse(OSError):
    """Another router runs on this data folder."""


def remove_stale_temp_files(folder: str | os.PathLike) -> int:
    """Delete the temp files atomic_write leaves when a process is killed mid-write (`.NAME.PID.tmp`), in
    `folder` and below; call only while holding the folder (DataDirLock). Returns how many."""
    removed = 0
    for path in Path(folder).rglob(".*.tmp"):
        parts = path.name[1:-4].rsplit(".", 1)
        if len(parts) == 2 and parts[1].isdigit() and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644) -> None:
    atomic_write(path, text.encode("utf-8"), mode)
