"""Shared pieces of the benchmarks: models from presets, in-memory data, machine facts."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
#: what a measured figure depends on: a change elsewhere (the docs) leaves the figures as they were
CODE = ("stagegen", "plugins", "benchmarks", "pyproject.toml")


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def save_result(path: Path, record: dict) -> None:
    """Write a benchmark's figures as JSON with where they come from (the command, the commit,
    the machine, when), atomically: docs/performance.md and docs/results.md are rendered from
    these files (benchmarks/pages.py)."""

    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    script = Path(sys.argv[0])
    provenance = {
        "command": " ".join(["python", f"benchmarks/{script.name}", *sys.argv[1:]]),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no", "--", *CODE)),
        "machine": machine(),
        "cores": os.cpu_count(),
        "load_at_end": os.getloadavg()[0],
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**provenance, **record}, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def images_in_memory(image_size: int, channels: int, count: int = 4096) -> torch.Tensor:
    """Real images as one uint8 tensor: MNIST when ../shared/data has it, else the digits."""
    from stagegen.data import open_dataset

    if channels == 1 and (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        data = open_dataset("mnist", str(SHARED_MNIST), "train", image_size, 1)
    else:
        data = open_dataset("digits", None, "train", image_size, channels)
    images = data.images[:count]
    while images.shape[0] < count:  # repeat a small set
        images = torch.cat([images, images])[:count]
    return images.clone()


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_worker(script: str, args: list[str]) -> dict:
    """Run one measurement in a fresh process (clean peak-memory figure), return its JSON."""
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env={**os.environ})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    def __init__(self, device):
        self.device = device

    def __enter__(self):
        sync(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.seconds = time.perf_counter() - self.start
