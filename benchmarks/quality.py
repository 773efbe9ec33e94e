"""The paper's claim, measured: VAE vs deep residual VAE vs multi-stage VAE (plus N-stage
variants beyond the paper) at equal budgets on real MNIST and CelebA 64x64.

    python benchmarks/quality.py                  # both datasets, writes docs/results.md and docs/results-*.png
    python benchmarks/quality.py --datasets mnist --steps 300   # a quick look

Every model shares the trunk architecture, latent size, batch, steps, learning rate and seed;
they differ only in their refiner stages and losses. Widths are smaller than the paper's so
that each dataset finishes on a 2-core CPU in well under an hour.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs"

SETTINGS = {
    "mnist": {
        "data": {"name": "mnist", "root": str(SHARED / "mnist")},
        "image_size": 28, "channels": 1, "steps": 1500, "batch": 64, "lr": 1e-3,
        "trunk": {"widths": [32, 64, 128], "latent_dim": 32},
        "refiner": {"width": 32, "blocks": 3, "head_width": 64},
        "fid": "mnist",
    },
    "celeba": {
        "data": {"name": "celeba", "root": str(SHARED / "celeba")},
        "image_size": 64, "channels": 3, "steps": 600, "batch": 32, "lr": 5e-4,
        "trunk": {"widths": [32, 64, 128, 256], "latent_dim": 64},
        "refiner": {"width": 32, "blocks": 2, "head_width": 32},
        "fid": None,  # no ImageNet Inception weights here; the MNIST classifier means nothing on faces
    },
}


# KL weighting. The authors' per-element KL mean collapsed the posterior at this scale (MNIST, 1,500 steps:
# KL 0.015 nats per latent element, 0.46 per image; every sample the same blur), so every model uses the
# per-image ELBO of a Gaussian decoder with sigma = 0.1 in [0, 1] units (0.2 on the networks' [-1, 1] scale):
# sum (x - y)^2 / (2 * 0.2^2) + KL_sum, divided by 12.5 * pixels to keep the l2 term a mean.
DECODER_SIGMA = 0.2


def kl_options(s: dict) -> dict:
    pixels = s["channels"] * s["image_size"] ** 2
    return {"kl_reduction": "sum", "kl_weight": 2 * DECODER_SIGMA**2 / pixels}


def models(s: dict) -> dict[str, list[dict]]:
    trunk, ref = {**s["trunk"], **kl_options(s)}, s["refiner"]
    adv = {"width": ref["width"], "blocks": ref["blocks"], "disc_width": 32, "disc_layers": 2, "adversarial_weight": 0.1,
           "start_step": s["steps"] // 3}
    return {
        "vae": [{"type": "vae", "options": trunk}],
        "resvae": [{"type": "vae", "options": {**trunk, "recon_loss": "none"}}, {"type": "resnet-l2", "options": ref}],
        "msvae": [{"type": "vae", "options": trunk}, {"type": "resnet-l1", "options": ref}],
        # beyond the paper: the refiner trains on a detached coarse image, so its l1 loss cannot pull the
        # trunk away from the prior; and an adversarial third stage on top of the two-stage model
        "msvae-detached": [{"type": "vae", "options": trunk}, {"type": "resnet-l1", "options": ref, "detach_input": True}],
        "msvae-adv": [{"type": "vae", "options": trunk}, {"type": "resnet-l1", "options": ref},
                      {"type": "adversarial", "options": adv}],
    }


def run_dataset(name: str, args, figures: Path) -> dict:
    from stagegen import load
    from stagegen.compare import real_images
    from stagegen.images import save_grid
    from stagegen.metrics import evaluate, feature_extractor
    from stagegen.train import train

    s = dict(SETTINGS[name])
    if args.steps:
        s["steps"] = args.steps
    out = Path(args.runs) / name
    fid = feature_extractor("mnist", mnist_root=str(SHARED / "mnist")) if s["fid"] else None
    real = real_images(s["data"]["name"], s["data"]["root"], "test", s["image_size"], s["channels"], args.eval_images)
    reports, pipelines, timings = {}, {}, {}
    for model, stages in models(s).items():
        if args.models and model not in args.models.split(","):
            continue
        run_dir = out / model
        config = {
            "pipeline": {"image_size": s["image_size"], "channels": s["channels"], "stages": stages},
            "train": {"steps": s["steps"], "batch_size": s["batch"], "lr": s["lr"], "seed": 0, "progress": False,
                      "log_every": 100, "sample_every": 0, "checkpoint_every": 0},
            "data": {**s["data"], "split": "train"},
        }
        if not (run_dir / "pipeline.safetensors").is_file() or args.retrain:
            start = time.perf_counter()
            train(config, run_dir)
            (run_dir / "train_seconds.json").write_text(json.dumps({"seconds": time.perf_counter() - start}))
        timings[model] = json.loads((run_dir / "train_seconds.json").read_text())["seconds"]
        pipelines[model] = load(run_dir / "pipeline.safetensors")
        reports[model] = evaluate(pipelines[model], real, n_samples=args.eval_images, seed=0, fid_features=fid)
        print(f"{name}/{model}: trained in {timings[model]:.0f}s, evaluated", file=sys.stderr)
    # reconstructions only: the input images are dataset images, which this repository never holds
    # (`stagegen reconstruct` shows them beside the reconstructions on your own machine)
    shown = real[:10]
    save_grid([p.reconstruct(shown) for p in pipelines.values()], figures / f"results-{name}-reconstructions.png")
    save_grid([p.sample(10, seed=1) for p in pipelines.values()], figures / f"results-{name}-samples.png")
    # the stages of the multi-stage models, coarse to fine, from the same latents
    for model in ("msvae", "msvae-adv"):
        if model in pipelines:
            save_grid(pipelines[model].sample(10, seed=1, return_stages=True), figures / f"results-{name}-{model}-stages.png")
    return {"settings": s, "reports": reports, "seconds": timings, "models": list(pipelines)}


HAND_WRITTEN = "<!-- written by hand below; benchmarks/quality.py keeps this part -->"


def _final(report: dict) -> dict:
    return report["stages"][-1]


def write_markdown(results: dict, path: Path) -> None:
    from stagegen.metrics import format_table

    lines = ["# Results: the paper's claim on real data", "",
             "Produced by `python benchmarks/quality.py` (see its docstring); every number below comes from that run.",
             "Figures hold generated images only: the reconstruction figures leave out the test inputs (dataset images",
             "are not kept in this repository); `stagegen reconstruct` shows inputs and reconstructions together.",
             "Training times were measured while other jobs shared the 2-core machine: compare them only roughly.", ""]
    for name, r in results.items():
        s = r["settings"]
        lines += [f"## {name}", "",
                  f"{s['image_size']}x{s['image_size']}, {s['steps']} steps, batch {s['batch']}, Adam lr {s['lr']} (beta1 0.5), "
                  f"seed 0; trunk widths {s['trunk']['widths']}, latent {s['trunk']['latent_dim']}, KL summed per image with weight "
                  f"{kl_options(s)['kl_weight']:.3g} (a Gaussian decoder with sigma 0.1 on [0, 1] images; see the script); refiners width "
                  f"{s['refiner']['width']}, {s['refiner']['blocks']} residual blocks (the paper: 64 wide, 5 blocks, latent "
                  f"{128 if name == 'mnist' else 512}, {'100,000' if name == 'mnist' else '200,000'} iterations). "
                  f"Evaluated on {r['reports'][r['models'][0]]['n_real']} test images and as many prior samples.", ""]
        head = ["model", "stages", "recon PSNR", "recon SSIM", "recon sharpness", "sample sharpness", "sample SWD (fine ... coarse)"]
        if s["fid"]:
            head.append("sample FID (MNIST classifier)")
        head.append("train s")
        lines += ["Final stage of each model:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for model in r["models"]:
            rep = r["reports"][model]
            f = _final(rep)
            cells = [model, ",".join(x["type"] for x in rep["stages"]), f"{f['recon_psnr']:.2f}", f"{f['recon_ssim']:.3f}",
                     f"{f['recon_sharpness']:.2f}", f"{f['sample_sharpness']:.2f}", " / ".join(f"{v:.2f}" for v in f["sample_swd"])]
            if s["fid"]:
                cells.append(f"{f['sample_fid']:.1f}")
            cells.append(f"{r['seconds'][model]:.0f}")
            lines.append("| " + " | ".join(cells) + " |")
        if s["fid"]:
            acc = r["reports"][r["models"][0]].get("fid_classifier_test_accuracy")
            lines += ["", f"The FID classifier (stagegen's own, trained on the MNIST training set) has test accuracy {acc:.2%}."]
        lines += ["", f"![reconstructions](results-{name}-reconstructions.png)", "",
                  f"Reconstructions of the first ten test images (inputs not shown), one row per model: {', '.join(r['models'])}.", "",
                  f"![samples](results-{name}-samples.png)", "", f"Prior samples (same seed), one row per model: {', '.join(r['models'])}.", ""]
        for model in ("msvae", "msvae-adv"):
            if model in r["models"]:
                lines += [f"![{model} stages](results-{name}-{model}-stages.png)", "",
                          f"{model}: each stage's output for the same latents, coarse (top) to final (bottom).", ""]
        lines += ["Per-stage tables:", ""]
        for model in r["models"]:
            lines += [format_table(r["reports"][model], title=model), ""]
    # the discussion below the marker is written by a person after looking at a run; keep it
    kept = path.read_text().split(HAND_WRITTEN, 1)[1] if path.is_file() and HAND_WRITTEN in path.read_text() else \
        "\n## Reading the numbers\n\n(to be written after looking at the run)\n"
    path.write_text("\n".join(lines) + "\n" + HAND_WRITTEN + kept)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="mnist,celeba")
    p.add_argument("--models", help="comma-separated subset of vae,resvae,msvae,msvae-detached,msvae-adv")
    p.add_argument("--steps", type=int, help="override the steps of every dataset")
    p.add_argument("--eval-images", type=int, default=1000)
    p.add_argument("--runs", default=str(ROOT / "runs" / "quality"), help="where the trained pipelines go")
    p.add_argument("--retrain", action="store_true", help="train again even where a pipeline exists")
    p.add_argument("--out", type=Path, default=DOCS / "results.md")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {name: run_dataset(name, args, args.out.parent) for name in args.datasets.split(",")}
    (Path(args.runs) / "results.json").write_text(json.dumps(results, indent=2, default=str))
    write_markdown(results, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
