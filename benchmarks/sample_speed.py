"""Sampling throughput of a pipeline and its load time.

    python benchmarks/sample_speed.py                          # msvae-mnist architecture, CPU
    python benchmarks/sample_speed.py --presets msvae-celeba --device cuda

Builds the preset's pipeline (random weights: speed does not depend on training), saves it,
times `stagegen.load`, then `Pipeline.sample` at batch 1, 64 and 256 (median of repetitions,
after warm-up).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, machine, median, save_result  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="msvae-mnist,vae-mnist")
    p.add_argument("--batches", default="1,64,256")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)

    import stagegen
    from stagegen.config.presets import compose_run_config
    from stagegen.pipeline import Pipeline

    device = torch.device(args.device)
    print(f"machine: {machine()}")
    print("| model | load s | batch | images/s | ms per batch |")
    print("|---|---|---|---|---|")
    rows = []
    for preset in args.presets.split(","):
        config = compose_run_config(preset).pipeline
        with tempfile.TemporaryDirectory() as tmp:
            path = Pipeline(config).save(Path(tmp) / "p.safetensors")
            loads = []
            for _ in range(3):
                start = time.perf_counter()
                pipe = stagegen.load(path, device=args.device)
                loads.append(time.perf_counter() - start)
        for batch in (int(b) for b in args.batches.split(",")):
            pipe.sample(batch, seed=0)  # warm-up
            times = []
            for r in range(args.reps):
                with Timer(device) as t:
                    pipe.sample(batch, seed=r)
                times.append(t.seconds)
            m = median(times)
            print(f"| {preset} | {median(loads):.3f} | {batch} | {batch / m:.1f} | {1000 * m:.1f} |")
            rows.append({"model": preset, "load_seconds": median(loads), "batch": batch, "images_per_second": batch / m})
    if args.json:
        save_result(args.json, {"benchmark": "sample_speed", "reps": args.reps, "device": args.device, "rows": rows})


if __name__ == "__main__":
    main()
