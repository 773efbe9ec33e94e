"""The README's main job, timed as a user runs it: `stagegen train --out RUN` (the default
preset on the embedded digits) in a fresh process, wall-clock from start to exit, and the
training images per second its own metrics.jsonl reports; then how recognisable its samples
are (`stagegen eval --metrics recognisability`).

    python benchmarks/default_run.py --json benchmarks/results/default_run.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save_result  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more arguments for `stagegen train`")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch) / "default"
        command = [sys.executable, "-m", "stagegen", "train", "--out", str(run), "--no-progress", *args.extra]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        wall = time.perf_counter() - start
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        rates = [line["images_per_second"] for line in lines if isinstance(line.get("images_per_second"), (int, float))]
        steps = max(line.get("step", 0) for line in lines)
        evaluation = subprocess.run(
            [
                sys.executable,
                "-m",
                "stagegen",
                "eval",
                str(run / "pipeline.safetensors"),
                "--metrics",
                "recognisability,sharpness",
                "--samples",
                "1000",
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        report = json.loads(evaluation.stdout)
    figures = {
        "benchmark": "default_run",
        "train_command": "stagegen train --out runs/default " + " ".join(args.extra),
        "wall_seconds": wall,
        "steps": steps,
        "images_per_second_median": statistics.median(rates) if rates else None,
        "final_stage": report["stages"][-1],
        "real_confident": report.get("real_confident"),
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        save_result(args.json, figures)


if __name__ == "__main__":
    main()
