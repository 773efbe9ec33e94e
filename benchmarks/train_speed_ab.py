"""Training throughput of two versions of stagegen side by side: this working tree against an
earlier commit, interleaved (old, new, then new, old, ...), each measurement in its own process
running train_speed.py's stagegen worker of that version, on the same machine in one run.

    python benchmarks/train_speed_ab.py --old 8333488 --rounds 3      # the sharp presets on the CPU

The old version is checked out into a temporary git worktree and imported from there, with its
built-in plugins and its own entry points (benchmarks/trees.py), so nothing needs reinstalling. Prints each measurement and, per preset,
the medians and their ratio (new / old).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from trees import ROOT, environment, worktree

PRESETS = "sharp-digits:64,sharp-mnist:64,sharp-celeba64:32"


def measure(tree: Path, preset: str, batch: int, args, scratch: Path) -> float:
    env = environment(tree, scratch)
    command = [sys.executable, str(tree / "benchmarks" / "train_speed.py"), "--worker", "stagegen", "--preset", preset]
    command += ["--batch", str(batch), "--steps", str(args.steps), "--reps", str(args.reps), "--warmup", "3"]
    command += ["--device", args.device]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{tree} {preset} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["images_per_second"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True, help="the earlier commit (any git revision)")
    p.add_argument("--presets", default=PRESETS, help="PRESET:BATCH,...")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, help="also write every measurement and the medians here")
    args = p.parse_args(argv)
    presets = [(name, int(batch)) for name, batch in (item.split(":") for item in args.presets.split(","))]
    with tempfile.TemporaryDirectory() as scratch, worktree(args.old, Path(scratch) / "old") as old:
        trees = {"old": old, "new": ROOT}
        rates: dict[tuple[str, str], list[float]] = {}
        for r in range(args.rounds):
            for preset, batch in presets:
                for who in ("old", "new") if r % 2 == 0 else ("new", "old"):
                    rate = measure(trees[who], preset, batch, args, Path(scratch))
                    rates.setdefault((preset, who), []).append(rate)
                    print(f"round {r} {preset} {who}: {rate:.1f} images/s", flush=True)
    print(f"\n| preset | batch | {args.old} images/s (median) | this tree | new / old |\n|---|---|---|---|---|")
    for preset, batch in presets:
        a, b = statistics.median(rates[preset, "old"]), statistics.median(rates[preset, "new"])
        print(f"| {preset} | {batch} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    if args.json:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _common import save_result

        rows = [
            {
                "preset": preset,
                "batch": batch,
                "old": rates[preset, "old"],
                "new": rates[preset, "new"],
                "old_median": statistics.median(rates[preset, "old"]),
                "new_median": statistics.median(rates[preset, "new"]),
                "ratio": statistics.median(rates[preset, "new"]) / statistics.median(rates[preset, "old"]),
            }
            for preset, batch in presets
        ]
        save_result(args.json, {"benchmark": "train_speed_ab", "old": args.old, "rounds": args.rounds, "rows": rows})


if __name__ == "__main__":
    main()
