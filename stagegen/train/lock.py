"""One writer per run directory: an exclusive lock the operating system releases when the
process ends, however it ends (a killed run never leaves a stale lock behind). Training holds
it for the whole run; `fit-prior`, `eval` and `report` hold it while they write into a run."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from .run_dir import check_run_directory, open_no_follow

LOCK_NAME = ".lock"


class RunLocked(RuntimeError):
    """Another live process writes in this run directory."""


def _try_lock(fd: int) -> bool:
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # Windows
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
    except OSError:
        return False
    return True


@contextlib.contextmanager
def run_lock(run_dir: str | Path):
    """Hold ``run_dir/.lock`` for the block; a second holder is refused with the first one's pid."""
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    check_run_directory(run_dir)  # a .lock linked elsewhere would have its target overwritten
    path = run_dir / LOCK_NAME
    fd = open_no_follow(path, os.O_RDWR | os.O_CREAT)
    failed = False
    try:
        if not _try_lock(fd):
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "an unknown process"
            raise RunLocked(
                f"run directory {run_dir} is in use by another stagegen command ({holder}); wait for it to finish, "
                "stop it, or write elsewhere (another --out)"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        try:
            yield path
        except BaseException:
            failed = True
            raise
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a waiting process)
        if failed and created and [p.name for p in run_dir.iterdir()] == [LOCK_NAME]:
            # a run that failed before writing anything leaves no empty directory behind
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()


def is_run_directory(folder: str | Path) -> bool:
    """Whether ``folder`` is a training run's directory (train wrote its config.json there)."""
    return (Path(folder) / "config.json").is_file()


@contextlib.contextmanager
def run_lock_for(path: str | Path):
    """The lock of the run directory a command is about to write ``path`` into, held for the
    block (a file elsewhere needs none): a pipeline refitted into a run that is still training
    would otherwise be overwritten by it, or leave the run's files describing two models."""
    folder = Path(path).parent
    if is_run_directory(folder):
        with run_lock(folder):
            yield
    else:
        yield
