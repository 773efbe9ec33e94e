"""What the training grids show: recognisability of samples drawn, at a grid step, from the prior
the grids use (the run's prior type refitted to the latest posteriors) against N(0, I) (what the
grids drew from before), and against the finished pipeline's samples.

    python benchmarks/grid_prior.py [--data-root ../shared/data/mnist] [--at 500] [--steps 1500]

Trains `sharp-mnist` to ``--at`` steps in a scratch directory, measures 1,000 samples of each
kind with stagegen's MNIST classifier (share recognised with >= 0.9 confidence), then, with
``--steps`` above ``--at``, resumes the same run to the end and measures the saved pipeline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine  # noqa: E402


def main(argv=None):
    from stagegen import load
    from stagegen.config.presets import compose_run_config
    from stagegen.metrics.classifiers import Classifier, recognisability
    from stagegen.train import Trainer, resume
    from stagegen.train.outputs import generator_weights

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--at", type=int, default=500, help="the grid step measured")
    p.add_argument("--steps", type=int, default=1500, help="the run's length (the finished pipeline is measured too)")
    p.add_argument("--samples", type=int, default=1000)
    args = p.parse_args(argv)
    print(machine())
    classifier = Classifier("mnist", args.data_root)

    def recognised(images: torch.Tensor) -> float:
        return recognisability(classifier.probabilities(images))[0]

    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch) / "run"
        config = compose_run_config(
            "sharp-mnist",
            data__root=args.data_root,
            train__steps=args.steps,
            train__sample_every=args.at,
            train__time_budget=10**6,
            train__progress=False,
        )
        trainer = Trainer(config, run)
        trainer.fit(stop_after=args.at)
        state, g = trainer.state, torch.Generator().manual_seed(0)
        with torch.inference_mode(), generator_weights(state) as pipeline:
            fitted = state.sample_prior.prior.sample(args.samples, g)
            normal = torch.randn((args.samples, *pipeline.trunk.latent_shape), generator=g)
            grid = recognised(pipeline.decode(fitted))
            plain = recognised(pipeline.decode(normal))
        print(f"step {args.at}: grid prior (refitted to the latest posteriors) {grid:.1%}, N(0, I) {plain:.1%}")
        if args.steps > args.at:
            resume(run, steps=args.steps)
            final = recognised(load(run / "pipeline.safetensors").sample(args.samples, seed=0))
            print(f"step {args.steps}: the saved pipeline's samples {final:.1%}")


if __name__ == "__main__":
    main()
