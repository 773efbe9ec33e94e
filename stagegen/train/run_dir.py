"""A run directory's own files are read and written in place, never through a link.

A run directory copied from someone else (an archive, a shared drive) could otherwise point
``.lock``, ``metrics.jsonl`` or ``checkpoints/`` at any file the user can write, and a run
would overwrite it, append to it or clean it up. The directory itself may be a link: the user
named it on the command line. Nothing inside it is followed.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..text import safe_name

__all__ = ["RUN_FOLDERS", "LinkInRunDirectory", "check_run_directory", "open_no_follow"]

#: folders a run writes into; their entries are checked as well as the directory's own
RUN_FOLDERS = ("samples", "checkpoints", "tensorboard")

#: refuses to open the last component of a path if it is a symbolic link (0 where the OS has none)
NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


class LinkInRunDirectory(ValueError):
    """A run directory holds a symbolic link where a run writes or reads its own files."""


def _links(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.is_symlink()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def check_run_directory(run_dir: str | Path) -> None:
    """Refuse a run directory that holds a link among its entries or in its own folders."""
    run_dir = Path(run_dir)
    links = _links(run_dir)
    for name in RUN_FOLDERS:
        folder = run_dir / name
        if folder.is_dir() and not folder.is_symlink():
            links += _links(folder)
    if links:
        link = links[0]
        others = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
        raise LinkInRunDirectory(
            f"{safe_name(str(link))} is a symbolic link (to {safe_name(os.readlink(link))}){others}: a run never reads or "
            "writes its files through links, since a run directory from elsewhere could point them at any file. "
            "Remove the link (or copy the real file in its place), or train in another --out"
        )


def open_no_follow(path: str | Path, flags: int, mode: int = 0o644) -> int:
    """os.open that refuses a link at ``path`` (one made after the check), with the same message."""
    try:
        return os.open(path, flags | NO_FOLLOW, mode)
    except OSError:
        if Path(path).is_symlink():
            raise LinkInRunDirectory(
                f"{safe_name(str(path))} is a symbolic link: a run never writes its files through links; remove it"
            ) from None
        raise
