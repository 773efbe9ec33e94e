"""The README's install commands, with the pip a fresh `python -m venv` brings (not upgraded).

A venv of this interpreter gets its own bundled pip and sees none of this environment's
packages, except the heavy dependencies: torch's wheel is several GB, so every installed
distribution *other than stagegen's own* is made visible through a .pth file pointing at a
folder of links. pip then has to resolve and install stagegen and the example plugin exactly
as on a fresh machine (pip 23.2 once failed right there), without copying torch again.
"""

from __future__ import annotations

import re
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = re.compile(r"^(stagegen|__editable__.*stagegen|_?stagegen_edge|.*stagegen.*\.pth$)", re.IGNORECASE)


def _readme_command(marker: str) -> str:
    """The README line (in a bash block) that contains ``marker``."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if marker in line and line.startswith("python -m pip"):
            return line
    raise AssertionError(f"README.md has no command with {marker!r}")


def _venv(tmp_path: Path, name: str) -> Path:
    venv = tmp_path / name
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    mirror = tmp_path / "site-mirror"
    if not mirror.exists():
        mirror.mkdir()
        for packages in map(Path, site.getsitepackages()):
            for entry in packages.iterdir():
                if not OURS.match(entry.name) and not entry.name.endswith(".pth") and not (mirror / entry.name).exists():
                    (mirror / entry.name).symlink_to(entry)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "heavy-dependencies.pth").write_text(str(mirror) + "\n")
    return venv


def _sh(command: str, venv: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(sys, "base_prefix"), reason="needs the venv module")
def test_readme_test_install_works_with_a_fresh_venvs_pip(tmp_path):
    venv = _venv(tmp_path, "test-venv")
    bundled = _sh("python -m pip --version", venv, ROOT).stdout
    command = _readme_command("[test]").split(" && python -m pytest")[0]
    proc = _sh(command, venv, ROOT)
    assert proc.returncode == 0, f"{command}\nwith {bundled}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    listed = _sh("stagegen plugins", venv, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "edge-l1 (refiner) from stagegen-edge" in listed.stdout and "gmm (prior)" in listed.stdout


@pytest.mark.slow
def test_readme_main_install_gives_every_builtin_plugin(tmp_path):
    venv = _venv(tmp_path, "main-venv")
    command = _readme_command("pip install . &&").split(" && ")[0]
    proc = _sh(command, venv, ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # a regular (not editable) install: the built-in plugins in plugins/ must have been packaged
    listed = _sh("stagegen plugins", venv, tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in (
        "vae (trunk)",
        "resnet-l1 (refiner)",
        "srresnet-perceptual (refiner)",
        "adversarial (refiner)",
        "resnet-gan (refiner)",
        "resnet (network)",
        "adversarial (loss)",
        "l1 (loss)",
        "normal (prior)",
        "gmm (prior)",
        "latent-vae (prior)",
    ):
        assert name in listed.stdout, name
    where = _sh("python -c 'import stagegen; print(stagegen.__file__)'", venv, tmp_path).stdout
    assert str(ROOT) not in where and "main-venv" in where
