"""Images per second that the data pipeline delivers: CelebA from the official zip, cold (the
first pass decodes every JPEG into the cache) and warm (batches read from the memory-mapped
cache), with 0 and 2 worker processes, at 64x64 and 128x128; and what opening the cached split
costs, with the share of it spent verifying the cache file's SHA-256 against its sidecar.

    python benchmarks/data_speed.py [--data-root ../shared/data/celeba] [--split train]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, save_result  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "celeba"))
    p.add_argument("--split", default="train")
    p.add_argument("--sizes", default="64,128")
    p.add_argument("--workers", default="0,2")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2, help="passes over the cached split for the warm figure")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)

    from stagegen.data import open_dataset
    from stagegen.data.cache import sha256_of

    if not Path(args.data_root).exists():
        raise SystemExit(f"no CelebA at {args.data_root}; give --data-root")
    print(f"machine: {machine()}")
    print(f"CelebA {args.split} split from {args.data_root}, batch {args.batch}")
    print(
        "| size | workers | cold: decode into cache, images/s | warm: batches from cache, images/s "
        "| open the cached split, s | of which SHA-256 check, s | one warm epoch, s |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for workers in (int(w) for w in args.workers.split(",")):
            with tempfile.TemporaryDirectory() as cache:
                start = time.perf_counter()
                data = open_dataset("celeba", args.data_root, args.split, size, 3, {"workers": workers}, cache_dir=cache)
                cold = len(data) / (time.perf_counter() - start)
                start = time.perf_counter()
                again = open_dataset("celeba", args.data_root, args.split, size, 3, {"workers": workers}, cache_dir=cache)
                opened = time.perf_counter() - start
                assert getattr(again, "cache_hit", False)
                start = time.perf_counter()
                for data_file in Path(cache).glob("*.u8"):
                    sha256_of(data_file)
                checksum = time.perf_counter() - start
                loader = DataLoader(
                    again,
                    batch_size=args.batch,
                    shuffle=True,
                    num_workers=workers,
                    drop_last=True,
                    persistent_workers=workers > 0,
                    generator=torch.Generator().manual_seed(0),
                )
                for _ in loader:  # warm-up pass (starts the workers, pages in the map)
                    break
                start, seen = time.perf_counter(), 0
                for _ in range(args.epochs):
                    for batch in loader:
                        seen += batch.shape[0]
                warm = seen / (time.perf_counter() - start)
            print(f"| {size} | {workers} | {cold:.0f} | {warm:.0f} | {opened:.3f} | {checksum:.3f} | {len(again) / warm:.3f} |")
            rows.append(
                {
                    "size": size,
                    "workers": workers,
                    "cold_images_per_second": cold,
                    "warm_images_per_second": warm,
                    "open_seconds": opened,
                    "checksum_seconds": checksum,
                    "images": len(again),
                }
            )
    if args.json:
        save_result(args.json, {"benchmark": "data_speed", "split": args.split, "batch": args.batch, "rows": rows})


if __name__ == "__main__":
    main()
