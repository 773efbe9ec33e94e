"""Files that must survive a crash: written whole or not at all."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "read_text_file"]


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


def read_text_file(path: str | Path, what: str, max_bytes: int) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``, or one ValueError naming the
    file: a FIFO or a device (``/dev/zero``) would block or read without end, so only regular
    files are read, and never more than the bound."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO without a writer must not block
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{what} {path} is not a regular file (a FIFO, a device or a socket); give a file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what} {path} is larger than {max_bytes:,} bytes: not a file stagegen writes or reads as {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})") from None
