"""Where a training step's time goes: torch.profiler over stagegen's trainer step.

    python benchmarks/profile_step.py [--preset vae-mnist] [--batch 64] [--steps 10] [--device cuda]

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
from _common import Timer, images_in_memory, save_result, sync  # noqa: E402
from train_speed import _joined  # noqa: E402

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
    p.add_argument("--device", default="cpu", help="cpu or cuda (then the GPU's kernel time is profiled too)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)

    from stagegen.config.presets import compose_run_config
    from stagegen.data.tensors import TensorImages
    from stagegen.train import Trainer

    config = compose_run_config(args.preset, train__batch_size=args.batch, train__progress=False, train__device=args.device)
    config = config.model_copy(update={"pipeline": _joined(config.pipeline)})  # every stage trains, as in train_speed
    images = images_in_memory(config.pipeline.image_size, config.pipeline.channels)
    cuda = torch.device(args.device).type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, dataset=TensorImages(images))
        batches = trainer.batches()
        for _ in range(5):
            trainer.train_step(batches)
        sync(trainer.device)
        with torch.profiler.profile(activities=activities) as prof, Timer(trainer.device) as wall:
            for _ in range(args.steps):
                trainer.train_step(batches)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    figures = {"preset": args.preset, "batch": args.batch, "device": args.device, "ms_per_step": wall.seconds * 1e3 / args.steps}
    if cuda:  # how much of the step the GPU spends in kernels; the rest it waits for the host
        kernel_us = sum(e.self_device_time_total for e in prof.key_averages() if e.device_type.name == "CUDA")
        figures["gpu_busy_share"] = kernel_us / 1e6 / wall.seconds
        print(
            f"GPU busy {figures['gpu_busy_share']:.0%} of {figures['ms_per_step']:.1f} ms per step "
            f"(kernel time over wall-clock time, {args.steps} profiled steps)"
        )
    total = sum(e.self_cpu_time_total for e in events)
    groups: dict[str, float] = defaultdict(float)
    for e in events:
        groups[group_of(e.key)] += e.self_cpu_time_total
    figures["group_share"] = {g: t / total for g, t in sorted(groups.items(), key=lambda kv: -kv[1])}
    figures["operator_share"] = {
        e.key: e.self_cpu_time_total / total for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]
    }
    if args.json:
        save_result(args.json, {"benchmark": "profile_step", **figures})
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
