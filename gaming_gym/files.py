"""Files a run writes: atomic writes (a reader, or a run interrupted mid-write, never sees half a
file) and the exclusive lock of one writer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gaming_gym.errors import RunDirectoryError, RunInUseError

try:
    import fcntl
except ImportError:  # not POSIX: an O_EXCL lock file instead
    fcntl = None

NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""Open flag that refuses a symbolic link at the last component (0 where the system has none)."""
PARTIAL_MARK = "gaming_gym-partial"
"""What every temporary :func:`atomic_write` makes carries in its name (``.STEM.PID.MARK.EXT``), so
a cleanup removes only files this writer made, never a user's ``.notes.partial.md``."""


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path`` at once.

    The temporary keeps ``path``'s suffix (writers that pick a format by suffix still work) and is
    removed if the block fails. Parent folders are created. A system error that names no file (a
    full disk) is raised again naming ``path``, so its one-line message says where.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.{PARTIAL_MARK}{path.suffix}")
    try:
        with naming(path):
            claim_new_file(partial)
            yield partial
            os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Raise a system error of the block that names no file (a full disk, say) again naming
    ``path``, so its one-line message says where it happened."""
    try:
        yield
    except OSError as error:
        if error.filename is None and error.strerror:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def claim_new_file(path: Path) -> None:
    """Create ``path`` afresh as an empty regular file of this process: whatever sits there (a
    temporary a killed writer of the same PID left, or a planted link, which is removed, never
    followed) is replaced, so the writer that opens it next writes here and nowhere else."""
    if path.is_symlink() or path.exists():
        path.unlink()
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o644))


def open_no_follow(path: Path, mode: str, **kwargs):
    """``open(path, mode)`` that refuses a symbolic link at ``path`` (a :class:`RunDirectoryError`)."""
    refuse_link(path)
    flags = {"a": os.O_WRONLY | os.O_CREAT | os.O_APPEND, "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC}[mode]
    return os.fdopen(os.open(path, flags | NO_FOLLOW, 0o644), mode, **kwargs)


def refuse_link(path: Path) -> None:
    """A :class:`RunDirectoryError` if ``path`` is a symbolic link: gaming_gym follows no link it
    did not make."""
    if path.is_symlink():
        raise RunDirectoryError(
            f"{path} is a symbolic link; gaming_gym writes through no link it did not make: remove it"
        )


def sync_file(file) -> None:
    """Flush ``file`` and have the system write it to disk."""
    file.flush()
    os.fsync(file.fileno())


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path) as partial:
        partial.write_text(text)
    return Path(path)


class Lock:
    """An exclusive lock on a run directory, taken at once or refused with the holder's PID.

    With ``fcntl``: ``flock`` on the lock file (the kernel lets go if the process dies), which is
    removed on release; a process that locked a file just removed tries again on the new one.
    Without: the file is created with ``O_EXCL``; one left by a killed process must be deleted by
    hand (the message says so).
    """

    def __init__(self, path: Path):
        self.path = path
        refuse_link(path)
        self.fd = self._flock() if fcntl is not None else self._create()
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def _flock(self) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NO_FOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise self._in_use(holder) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)  # the holder removed this file as we opened it: lock the new one

    def _create(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o644)
        except FileExistsError:
            fd = os.open(self.path, os.O_RDONLY | NO_FOLLOW)
            holder = _read_pid(fd)
            os.close(fd)
            raise self._in_use(holder, stale_hint=True) from None

    def _in_use(self, holder: str, stale_hint: bool = False) -> RunInUseError:
        hint = f" (if no process {holder} runs, it was killed: delete {self.path})" if stale_hint else ""
        return RunInUseError(
            f"{self.path.parent} is in use by another gaming_gym process (PID {holder}){hint}; one "
            f"run directory has one writer: wait for it to finish, or use another directory"
        )

    def release(self) -> None:
        if fcntl is not None:  # remove, then unlock: a waiter that got the old file retries
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
        else:  # an open file cannot be removed everywhere
            os.close(self.fd)
            self.path.unlink(missing_ok=True)


def _read_pid(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
