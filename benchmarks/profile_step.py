"""Where a training step's time goes: torch.profiler over stagegen's trainer step.

    python benchmarks/profile_step.py [--preset vae-mnist] [--batch 64] [--steps 10]

Prints the operators by self CPU time, and the share of convolutions (forward and backward),
batch norm, elementwise/activation ops and the optimiser. This is the profile behind the
"1.3x pythae" discussion in docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import images_in_memory  # noqa: E402

GROUPS = {
    "convolution": ("conv", "mkldnn_convolution", "convolution_backward", "_convolution"),
    "batch norm": ("batch_norm", "native_batch_norm"),
    "optimizer (Adam)": ("_foreach", "adam"),
    "linear": ("addmm", "mm", "linear"),
}


def group_of(name: str) -> str:
    lowered = name.lower()
    for group, keys in GROUPS.items():
        if any(k in lowered for k in keys):
            return group
    return "elementwise, activations, copies, other"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="vae-mnist")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)

    from stagegen.data.tensors import TensorImages
    from stagegen.presets import compose_run_config
    from stagegen.train import Trainer

    config = compose_run_config(args.preset, train__batch_size=args.batch, train__progress=False)
    images = images_in_memory(config.pipeline.image_size, config.pipeline.channels)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, dataset=TensorImages(images))
        batches = trainer.batches()
        for _ in range(3):
            trainer.train_step(batches)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                trainer.train_step(batches)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    groups: dict[str, float] = defaultdict(float)
    for e in events:
        groups[group_of(e.key)] += e.self_cpu_time_total
    print(
        f"{args.preset}, batch {args.batch}, {args.steps} trainer steps: {total / 1e3 / args.steps:.1f} ms per step (self CPU time)"
    )
    print("\n| group | share of step time |\n|---|---|")
    for g, t in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {g} | {t / total:.0%} |")
    print("\n| operator | calls per step | self CPU ms per step | share |\n|---|---|---|---|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        print(
            f"| {e.key} | {e.count / args.steps:.0f} | {e.self_cpu_time_total / 1e3 / args.steps:.2f} | {e.self_cpu_time_total / total:.1%} |"
        )


if __name__ == "__main__":
    main()
