"""Crafting the files an attacker or a careless user would hand to stagegen (for the tests)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path


def read_raw_header(path: Path) -> tuple[dict, bytes]:
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_raw(path: Path, header: dict, body: bytes) -> Path:
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(new)) + new + body)
    return Path(path)


def edit_header(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` whose raw safetensors header went through ``edit(header)``."""
    header, body = read_raw_header(source)
    edit(header)
    return write_raw(target, header, body)


def edit_document(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` whose stagegen document went through ``edit(doc)``."""

    def change(header):
        doc = json.loads(header["__metadata__"]["stagegen"])
        edit(doc)
        header["__metadata__"]["stagegen"] = json.dumps(doc)

    return edit_header(source, target, change)


def with_document_text(source: Path, target: Path, text: str) -> Path:
    """A copy of ``source`` whose stagegen document is replaced by ``text`` (need not be JSON)."""
    return edit_header(source, target, lambda h: h["__metadata__"].__setitem__("stagegen", text))


def run_bounded(code: str, *args: str, memory_bytes: int = 2**30, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that may allocate at most ``memory_bytes`` beyond what
    importing torch and stagegen took (RLIMIT_AS), killed after ``timeout`` seconds (speed is
    measured by benchmarks, not asserted by tests)."""
    prelude = (
        "import resource, sys, torch, stagegen, stagegen.pipeline, stagegen.cli\n"
        "from stagegen.plugin import get_plugin_manager; get_plugin_manager()\n"
        "vm = int([line for line in open('/proc/self/status') if line.startswith('VmSize')][0].split()[1]) * 1024\n"
        f"resource.setrlimit(resource.RLIMIT_AS, (vm + {memory_bytes}, vm + {memory_bytes}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return proc


__all__ = ["edit_document", "edit_header", "read_raw_header", "run_bounded", "with_document_text", "write_raw"]


class SmallFilesystem:
    """Folders on a filesystem with a few bytes free: a real tmpfs where the tests may mount one
    (root on Linux), else a simulation in which every write to the folder beyond ``free_bytes``
    raises ENOSPC, as a full disk does."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.mounted: list[Path] = []
        self.real = None
        import builtins

        self._real_open = builtins.open

    def __call__(self, path: Path, free_bytes: int) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        size = max(free_bytes, 4096)
        if self.real is not False and _try_mount(path, size):
            self.real = True
            self.mounted.append(path)
            return path
        self.real = False
        self._simulate(path, free_bytes)
        return path

    def _simulate(self, folder: Path, free_bytes: int) -> None:
        """Writes under ``folder`` through Python files fail with ENOSPC beyond ``free_bytes``
        (stagegen writes every file through Python's open, so a real full disk looks the same)."""
        import builtins
        import errno
        import io

        written = {"bytes": 0}
        real_open = self._real_open

        class Full(io.FileIO):
            def write(self, data):
                written["bytes"] += len(memoryview(data).cast("B"))
                if written["bytes"] > free_bytes:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return super().write(data)

        def limited_open(file, mode="r", *args, **kwargs):
            inside = isinstance(file, (str, os.PathLike)) and Path(file).resolve().is_relative_to(folder.resolve())
            if inside and any(c in mode for c in "wax+"):
                raw = Full(file, mode.replace("b", "").replace("t", "") or "w")
                return raw if "b" in mode else io.TextIOWrapper(io.BufferedWriter(raw))
            return real_open(file, mode, *args, **kwargs)

        self.monkeypatch.setattr(builtins, "open", limited_open)

    def close(self) -> None:
        for path in self.mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _try_mount(path: Path, size: int) -> bool:
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return proc.returncode == 0


def fill(fs: SmallFilesystem, path: Path, leave: int) -> None:
    """Use up the space of ``path``'s small filesystem but ``leave`` bytes."""
    if fs.real:
        import shutil

        free = shutil.disk_usage(path).free
        with open(Path(path) / ".filler", "wb") as f:
            f.write(bytes(max(0, free - leave)))
    else:
        fs._simulate(Path(path), leave)
