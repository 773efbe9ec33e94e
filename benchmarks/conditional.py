"""Sampling what you ask for, over seeds: a prior per label fitted after training (the default
run's ex-post conditional prior) against a trunk trained on the labels (a CVAE), with and
without a prior per label, on the embedded digits.

    python benchmarks/conditional.py --json benchmarks/results/conditional-digits.json

For each seed: `stagegen train` (the default `sharp-digits` run, which fits a prior per digit at
its end), and the same with `-O vae.classes=10 -O train.conditional_prior=false` (a CVAE); then
`stagegen fit-prior --conditional` gives the CVAE a prior per digit too; each pipeline is
measured with `stagegen eval --metrics recognisability,label_recognisability --samples 1000`
(100 samples per digit). The commands themselves run, one after the other, so the figures are
what a user of the CLI gets.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save_result  # noqa: E402

CVAE = ["-O", "vae.classes=10", "-O", "train.conditional_prior=false"]
MEASURE = ["--metrics", "recognisability,label_recognisability", "--samples", "1000", "--json"]


def stagegen(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "stagegen", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"stagegen {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def measure(path: Path, seed: int) -> dict:
    report = json.loads(stagegen("eval", str(path), *MEASURE, "--seed", str(seed)))
    keys = ("sample_confident", "label_recognised", "label_recognised_worst", "label_recognised_per_label")
    return {
        "stages": [{k: row[k] for k in ("stage", "type", *keys) if k in row} for row in report["stages"]],
        "label_samples_from": report.get("label_samples_from"),
        "n_samples_per_label": report.get("n_samples_per_label"),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    runs: dict[str, dict[str, dict]] = {"ex-post": {}, "cvae": {}, "cvae+ex-post": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in (int(s) for s in args.seeds.split(",")):
            common = ["--steps", str(args.steps), "--seed", str(seed), "--no-progress"]
            plain, cvae = Path(scratch) / f"plain{seed}", Path(scratch) / f"cvae{seed}"
            stagegen("train", "--out", str(plain), *common)
            stagegen("train", "--out", str(cvae), *common, *CVAE)
            labelled = cvae / "with-labels.safetensors"
            stagegen("fit-prior", str(cvae / "pipeline.safetensors"), "--conditional", "-o", str(labelled))
            runs["ex-post"][str(seed)] = measure(plain / "pipeline.safetensors", seed)
            runs["cvae"][str(seed)] = measure(cvae / "pipeline.safetensors", seed)
            runs["cvae+ex-post"][str(seed)] = measure(labelled, seed)
            print(f"seed {seed}: {json.dumps({k: v[str(seed)]['stages'][-1] for k, v in runs.items()})}", flush=True)
    figures = {"benchmark": "conditional", "steps": args.steps, "seeds": args.seeds, "runs": runs}
    if args.json:
        save_result(args.json, figures)


if __name__ == "__main__":
    main()
