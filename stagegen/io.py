"""Files that must survive a crash: written whole or not at all."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def _create_temporary(path: Path) -> tuple[Path, int]:
    """A new, empty file beside ``path`` with the mode open() would give it (0666 less the
    umask, unlike mkstemp's 0600), and that mode."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        os.close(fd)
        return tmp, mode
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Write through ``write(tmp_path)`` then rename over ``path``: a crash, a kill or a full disk
    leaves the old file or the new one, never a torn one. An OSError names ``path`` itself."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder is in the way of the file", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, mode = _create_temporary(path)
    except OSError as exc:  # name the file we meant to write, not a temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        write(str(tmp))
        os.chmod(tmp, mode)  # a writer that recreates the file would leave it private (0600)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
