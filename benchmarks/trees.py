"""Another version of stagegen beside this one, in the same Python: an earlier commit checked out
into a temporary git worktree, and the environment that makes a process import that tree, its
built-in plugins and its own entry points (and no other plugin).

The editable install names this tree's plugin modules in its entry points; an earlier tree may
have others (stagegen 0.2 had stagegen_srresnet and stagegen_adversarial). So each tree gets a
stand-in ``stagegen`` distribution with its own entry points, first on the path: Python's
entry-point lookup keeps the first distribution of a name it finds.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "environment", "worktree"]


@contextlib.contextmanager
def worktree(revision: str, where: Path) -> Iterator[Path]:
    """``revision`` checked out at ``where`` for the duration, removed afterwards."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(where), revision], check=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False)


def environment(tree: Path, scratch: Path) -> dict[str, str]:
    """The environment of a process that runs ``tree``'s stagegen, its plugins and entry points."""
    project = tomllib.loads((tree / "pyproject.toml").read_text())
    version = re.search(r'^__version__ = "([^"]+)"', (tree / "stagegen" / "__init__.py").read_text(), re.M).group(1)
    dist = scratch / f"entry-points-{tree.name}" / f"stagegen-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: stagegen\nVersion: {version}\n")
    entry_points = project["project"]["entry-points"]["stagegen"]
    lines = [f"{name} = {value}" for name, value in entry_points.items()]
    (dist / "entry_points.txt").write_text("[stagegen]\n" + "\n".join(lines) + "\n")
    path = os.pathsep.join([str(dist.parent), str(tree), str(tree / "plugins")])
    # the tree's built-ins only: an installed third-party plugin is written for one version
    return {**os.environ, "PYTHONPATH": path, "STAGEGEN_PLUGINS": ",".join(entry_points)}
