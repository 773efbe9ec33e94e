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

__all__ = [
    "RUN_FOLDERS",
    "RUN_OUTPUTS",
    "LinkInRunDirectory",
    "RunDirectoryInUse",
    "check_run_directory",
    "claim_run_directory",
    "open_no_follow",
]

#: folders a run writes into; their entries are checked as well as the directory's own
RUN_FOLDERS = ("samples", "checkpoints", "tensorboard")

#: everything a run writes in its directory (besides its lock and temporary files)
RUN_OUTPUTS = (
    "config.json",
    "metrics.jsonl",
    "pipeline.safetensors",
    "samples.png",
    "reconstructions.png",
    "report.html",
    "eval.json",
    *RUN_FOLDERS,
)

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


class RunDirectoryInUse(ValueError):
    """A new run was asked to write into a directory that already holds something."""


def _own(name: str) -> bool:
    """The run machinery's own files: its lock and the temporary files of atomic writes."""
    return name == ".lock" or (name.startswith(".") and name.endswith(".tmp"))


def claim_run_directory(run_dir: str | Path, overwrite: bool = False) -> None:
    """Make ``run_dir`` ready for a new run: it must be new or empty, so that two runs never mix
    (their metrics lines, grids and checkpoints would interleave, and the report would show
    both). With ``overwrite``, a previous run's files (:data:`RUN_OUTPUTS`) are deleted first;
    anything else there is left alone and never deleted."""
    import shutil

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    check_run_directory(run_dir)  # nothing is deleted through a link
    with os.scandir(run_dir) as entries:
        present = sorted(e.name for e in entries if not _own(e.name))
    if not present:
        return
    shown = ", ".join(safe_name(n) for n in present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
    if not overwrite:
        if any(name in RUN_OUTPUTS for name in present):
            raise RunDirectoryInUse(
                f"{safe_name(str(run_dir))} already holds a run ({shown}): continue it with "
                f"`stagegen train --resume {safe_name(str(run_dir))}`, train into another --out, or pass --overwrite "
                "to delete that run's files and start again there"
            )
        raise RunDirectoryInUse(
            f"{safe_name(str(run_dir))} is not empty ({shown}): train into a new or empty --out, or pass --overwrite "
            "to train there anyway (only a run's own files are ever deleted)"
        )
    for name in present:
        if name not in RUN_OUTPUTS:
            continue
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
