"""What benchmarks/gpu_check.sh needs beside the repository, in one git-ignored folder small enough
to travel to a GPU machine with it (this project's lent machines take 64 MiB in all):

    python benchmarks/gpu_bundle.py                 # .gpu/celeba: a CelebA subset in the official layout
    python benchmarks/gpu_bundle.py --wheels        # and .gpu/wheels: what the GPU machine's Python lacks

The CelebA subset is every val and test image of ../shared/data/celeba and the first train
images up to ``--train-images``, copied byte for byte into an ``img_align_celeba.zip`` of the
official layout, with the partition and attribute rows of those images. The wheels are the
packages stagegen needs that the lent machine's image does not hold (pydantic, lpips,
torch-fidelity and their own needs), for Python 3.12 on x86-64 Linux.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_CELEBA = ROOT.parent / "shared" / "data" / "celeba"
#: installed on the GPU machine with --no-deps: each one's own needs are listed too
WHEELS = ["pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions", "lpips", "torch-fidelity"]


def celeba_subset(source: Path, out: Path, train_images: int) -> tuple[int, int]:
    partition = {}
    for line in (source / "list_eval_partition.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            partition[parts[0]] = parts[1]
    out.mkdir(parents=True, exist_ok=True)
    kept, size, train = [], 0, 0
    with zipfile.ZipFile(source / "img_align_celeba.zip") as zin, zipfile.ZipFile(out / "img_align_celeba.zip", "w") as zout:
        for info in sorted(zin.infolist(), key=lambda i: i.filename):
            name = info.filename.rsplit("/", 1)[-1]
            split = partition.get(name)
            if split is None or (split == "0" and train >= train_images):
                continue
            train += split == "0"
            zout.writestr(info, zin.read(info))  # stored as the original entry: the JPEG bytes unchanged
            kept.append(name)
            size += info.file_size
    keep = set(kept)
    lines = [f"{n} {partition[n]}" for n in sorted(keep)]
    (out / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    attributes = source / "list_attr_celeba.txt"
    if attributes.is_file():
        rows = attributes.read_text().splitlines()
        body = [r for r in rows[2:] if r.split(" ", 1)[0] in keep]
        (out / "list_attr_celeba.txt").write_text("\n".join([str(len(body)), rows[1], *body]) + "\n")
    return len(kept), size


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / ".gpu")
    p.add_argument("--train-images", type=int, default=4500)
    p.add_argument("--wheels", action="store_true", help="also download the wheels the GPU machine lacks")
    args = p.parse_args(argv)
    if not (SHARED_CELEBA / "img_align_celeba.zip").is_file():
        raise SystemExit(f"no CelebA at {SHARED_CELEBA}: the GPU check's 128x128 run needs it")
    count, size = celeba_subset(SHARED_CELEBA, args.out / "celeba", args.train_images)
    print(f"{args.out / 'celeba'}: {count} images ({size / 2**20:.1f} MiB)")
    if args.wheels:
        platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28, 34)] + ["--platform=manylinux2014_x86_64"]
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version=3.12"]
        command += ["--implementation=cp", *platforms, "-d", str(args.out / "wheels"), *WHEELS]
        subprocess.run(command, check=True)
        print(f"{args.out / 'wheels'}: {', '.join(sorted(f.name for f in (args.out / 'wheels').glob('*.whl')))}")


if __name__ == "__main__":
    main()
