"""Atomic file writes: a reader, or a run interrupted mid-write, never sees half a file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path`` at once.

    The temporary keeps ``path``'s suffix (writers that pick a format by suffix still work) and is
    removed if the block fails. Parent folders are created. A system error that names no file (a
    full disk) is raised again naming ``path``, so its one-line message says where.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        with naming(path):
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


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path) as partial:
        partial.write_text(text)
    return Path(path)
