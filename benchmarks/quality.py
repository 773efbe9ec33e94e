"""Sample quality, measured: the paper's three models as the paper set them, the same trained
models with a fitted prior, and stagegen's calibrated presets, at equal budgets on the
embedded digits, real MNIST and CelebA 64x64.

    python benchmarks/quality.py                                  # writes docs/results.md and docs/results-*.png
    python benchmarks/quality.py --datasets digits --steps 300    # a quick look
    python benchmarks/quality.py --datasets celeba                # one dataset again; the others' results are kept

Every model on a dataset shares the trunk architecture, latent size, batch, steps, learning rate
and seed; they differ in their losses and refiner stages. "+gmm" rows are the same trained
weights with a Gaussian mixture fitted to the training posteriors afterwards (no retraining).
Widths are smaller than the paper's so that each dataset finishes on a 2-core CPU in minutes.
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
    "digits": {
        "data": {"name": "digits", "root": None},
        "image_size": 16,
        "channels": 1,
        "steps": 1500,
        "batch": 64,
        "lr": 1e-3,
        "trunk": {"widths": [32, 64, 128], "latent_dim": 32},
        "refiner": {"width": 32, "blocks": 3, "head_width": 64},
        "components": 10,
        "classifier": "digits",
        "curve_every": 0,
        "models": "vae,resvae,msvae,cal-vae,sharp,sharp-adv",
    },
    "mnist": {
        "data": {"name": "mnist", "root": str(SHARED / "mnist")},
        "image_size": 28,
        "channels": 1,
        "steps": 1500,
        "batch": 64,
        "lr": 1e-3,
        "trunk": {"widths": [32, 64, 128], "latent_dim": 32},
        "refiner": {"width": 32, "blocks": 3, "head_width": 64},
        "components": 20,
        "classifier": "mnist",
        "curve_every": 250,
        # the sharp-mnist preset's refiner
        "gan": {"width": 32, "blocks": 2, "weight": 0.02, "disc_width": 32, "train_from": 0},
        "models": "vae,resvae,msvae,cal-vae,sharp,sharp-adv,sharp-gan",
    },
    "celeba": {
        "data": {"name": "celeba", "root": str(SHARED / "celeba")},
        "image_size": 64,
        "channels": 3,
        # equal wall-clock: every model trains for 15 minutes (the step count is only a cap)
        "steps": 20_000,
        "time_budget": 900,
        "batch": 32,
        "lr": 5e-4,
        "trunk": {"widths": [32, 64, 128, 256], "latent_dim": 128},
        "refiner": {"width": 32, "blocks": 2, "head_width": 32},
        # the sharp-celeba64 preset's refiner and trunk (the ladder); the full-resolution chain's
        # refiner joins after about the same five minutes of trunk-only training
        "gan": {"width": 32, "blocks": 2, "weight": 0.015, "disc_width": 16, "train_from": 2000},
        "gan_full": {"train_from": 1000},
        "ladder_trunk": {"widths": [64, 128, 256], "latent_dim": 128},
        "sample_path_batch": 16,
        # no digit classifier for faces, and no Inception weights on this machine: no FID
        "components": 20,
        "classifier": None,
        "curve_every": 0,
        "models": "cal-vae,msvae,sharp,sharp-gan,ladder",
    },
}

PAPER = {}  # the authors' losses: l2 + KL averaged over latent elements (vae.py's defaults)
CALIBRATED = {"recon_loss": "calibrated", "kl_reduction": "elbo"}


def models(s: dict) -> dict[str, list[dict]]:
    from stagegen_presets import gan_refiner

    trunk, ref = s["trunk"], s["refiner"]
    adv = {
        "width": ref["width"],
        "blocks": ref["blocks"],
        "disc_width": 32,
        "disc_layers": 2,
        "adversarial_weight": 0.1,
        "start_step": s["steps"] // 3,
    }
    cal = {**trunk, **CALIBRATED}
    chains = {
        # the paper's three models with the authors' settings
        "vae": [{"type": "vae", "options": {**trunk, **PAPER}}],
        "resvae": [{"type": "vae", "options": {**trunk, "recon_loss": "none"}}, {"type": "resnet-l2", "options": ref}],
        "msvae": [{"type": "vae", "options": {**trunk, **PAPER}}, {"type": "resnet-l1", "options": ref}],
        # stagegen's presets: calibrated trunk (+ l1 refiner; + an adversarial last stage)
        "cal-vae": [{"type": "vae", "options": cal}],
        "sharp": [{"type": "vae", "options": cal}, {"type": "resnet-l1", "options": ref}],
        "sharp-adv": [
            {"type": "vae", "options": cal},
            {"type": "resnet-l1", "options": ref},
            {"type": "adversarial", "options": adv},
        ],
    }
    if "gan" not in s:
        return chains
    return {
        **chains,
        # refiners that add detail: l1 + a realism loss on reconstructions and prior samples (presets.gan_refiner)
        "sharp-gan": [{"type": "vae", "options": cal}, gan_refiner(**{**s["gan"], **s.get("gan_full", {})}, scale=1)],
        # the coarse-to-fine ladder: the calibrated trunk at half the resolution, that refiner upsamples x2
        "ladder": [
            {"type": "vae", "options": {**s.get("ladder_trunk", trunk), **CALIBRATED}},
            gan_refiner(**s["gan"], scale=2),
        ],
    }


def _config(s: dict, stages: list[dict], steps: int) -> dict:
    return {
        "pipeline": {
            "image_size": s["image_size"],
            "channels": s["channels"],
            "stages": stages,
            "prior": {"type": "gmm", "options": {"components": s["components"]}},
        },
        "train": {
            "steps": steps,
            "batch_size": s["batch"],
            "lr": s["lr"],
            "seed": 0,
            "progress": False,
            "log_every": 100,
            "sample_every": 0,
            "checkpoint_every": 0,
            "time_budget": s.get("time_budget"),
            "sample_path_batch": s.get("sample_path_batch"),
        },
        "data": {**s["data"], "split": "train"},
    }


def _train(s: dict, stages: list[dict], run_dir: Path, curve: list | None, evaluate_at) -> float:
    """Train (in segments when a time-to-quality curve is asked for: resuming is exact, so the
    segments make the same run); returns the seconds spent, prior fitting included."""
    from stagegen.train import resume, train

    seconds = 0.0
    if not s["curve_every"] or curve is None:
        start = time.perf_counter()
        train(_config(s, stages, s["steps"]), run_dir, overwrite=True)  # --retrain replaces an earlier run
        return time.perf_counter() - start
    for end in range(s["curve_every"], s["steps"] + 1, s["curve_every"]):
        start = time.perf_counter()
        if end == s["curve_every"]:
            train(_config(s, stages, end), run_dir, overwrite=True)
        else:
            resume(run_dir, steps=end)
        seconds += time.perf_counter() - start
        curve.append({"step": end, "seconds": seconds, **evaluate_at(run_dir / "pipeline.safetensors")})
        print(f"  step {end}: {curve[-1]}", file=sys.stderr)
    return seconds


def run_dataset(name: str, args, figures: Path) -> dict:
    from stagegen import load
    from stagegen.compare import real_images
    from stagegen.data import open_dataset
    from stagegen.metrics import evaluate
    from stagegen.metrics.classifiers import Classifier, recognisability
    from stagegen.metrics.fid import ClassifierFeatures
    from stagegen.prior import fit_prior

    s = dict(SETTINGS[name])
    if args.steps:
        s["steps"] = args.steps
        s["curve_every"] = min(s["curve_every"], args.steps) if s["curve_every"] else 0
    out = Path(args.runs) / name
    classifier = Classifier(s["classifier"], s["data"]["root"]) if s["classifier"] else None
    fid = ClassifierFeatures(classifier=classifier) if classifier else None
    real = real_images(s["data"]["name"], s["data"]["root"], "test", s["image_size"], s["channels"], args.eval_images)
    train_set = open_dataset(s["data"]["name"], s["data"]["root"], "train", s["image_size"], s["channels"])

    def quick(path):  # recognisability of final-stage prior samples, for the time-to-quality curve
        pipe = load(path)
        confident, coverage = recognisability(classifier.probabilities(pipe.sample(1000, seed=0)))
        return {"recognised": confident, "coverage": coverage}

    wanted = (args.models or s["models"]).split(",")
    reports, pipelines, timings, curve, trained_steps = {}, {}, {}, [], {}
    for model, stages in models(s).items():
        if model not in wanted:
            continue
        run_dir = out / model
        if not (run_dir / "pipeline.safetensors").is_file() or args.retrain:
            with_curve = curve if (model == "sharp" and classifier is not None) else None
            seconds = _train(s, stages, run_dir, with_curve, quick)
            (run_dir / "train_seconds.json").write_text(json.dumps({"seconds": seconds, "curve": with_curve}))
        saved = json.loads((run_dir / "train_seconds.json").read_text())
        if saved.get("curve"):
            curve = saved["curve"]
        pipe = load(run_dir / "pipeline.safetensors")  # its gmm prior was fitted at the end of training
        for prior in ("normal", "gmm"):
            label = f"{model}+{prior}"
            if prior == "normal":
                fitted = {k: v.clone() for k, v in pipe.prior.state_dict().items()}
                pipe.set_prior({"type": "normal"})
            else:
                pipe.set_prior({"type": "gmm", "options": {"components": s["components"]}})
                pipe.prior.load_state_dict(fitted)
            timings[label] = saved["seconds"]
            trained_steps[label] = pipe.file_metadata.get("extra", {}).get("train_steps")
            reports[label] = evaluate(pipe, real, n_samples=args.eval_images, seed=0, fid_features=fid, classifier=classifier)
            pipelines[label] = load(run_dir / "pipeline.safetensors")
            if prior == "normal":
                pipelines[label].set_prior({"type": "normal"})
        print(f"{name}/{model}: trained in {saved['seconds']:.0f}s, evaluated", file=sys.stderr)
    # how long fitting a prior takes, beside training (the sharp model's weights)
    fit_seconds = None
    if "sharp+gmm" in pipelines:
        pipe = pipelines["sharp+gmm"]
        start = time.perf_counter()
        fit_prior(pipe, train_set, seed=0)
        fit_seconds = time.perf_counter() - start
    write_figures(name, pipelines, real, figures)
    return {
        "settings": s,
        "reports": reports,
        "seconds": timings,
        "steps": trained_steps,
        "models": list(pipelines),
        "curve": curve,
        "prior_fit_seconds": fit_seconds,
    }


STAGE_FIGURES = ("msvae", "sharp", "sharp-adv", "sharp-gan", "ladder")


def write_figures(name: str, pipelines: dict, real: torch.Tensor, figures: Path) -> None:
    """Sample grids per prior, reconstructions, and each multi-stage model's stage grid.
    Generated images only: the dataset's own images are never written into this repository."""
    from stagegen.images import save_grid

    for prior in ("normal", "gmm"):
        rows = [p.sample(10, seed=1) for label, p in pipelines.items() if label.endswith("+" + prior)]
        save_grid(rows, figures / f"results-{name}-samples-{prior}.png")
    save_grid(
        [p.reconstruct(real[:10]) for label, p in pipelines.items() if label.endswith("+gmm")],
        figures / f"results-{name}-reconstructions.png",
    )
    for model in STAGE_FIGURES:
        if f"{model}+gmm" in pipelines:
            save_grid(
                pipelines[f"{model}+gmm"].sample(10, seed=1, return_stages=True), figures / f"results-{name}-{model}-stages.png"
            )


def rerender(results: dict, args) -> None:
    """Figures and results.md again from the trained pipelines and saved reports (no training, no
    evaluation): after a change to how results are shown."""
    from stagegen import load
    from stagegen.compare import real_images

    for name, r in results.items():
        s, out = r["settings"], Path(args.runs) / name
        pipelines = {}
        for label in r["models"]:
            model, _, prior = label.rpartition("+")
            pipe = load(out / model / "pipeline.safetensors")
            r.setdefault("steps", {})[label] = pipe.file_metadata.get("extra", {}).get("train_steps")
            if prior == "normal":
                pipe.set_prior({"type": "normal"})
            pipelines[label] = pipe
        real = real_images(s["data"]["name"], s["data"]["root"], "test", s["image_size"], s["channels"], args.eval_images)
        write_figures(name, pipelines, real, args.out.parent)
    write_markdown(results, args.out)


HAND_WRITTEN = "<!-- written by hand below; benchmarks/quality.py keeps this part -->"


def _cell(value, digits=2):
    return "" if value is None else f"{value:.{digits}f}"


def write_markdown(results: dict, path: Path) -> None:
    from stagegen.metrics import format_table

    header = [
        "# Results: sample quality per model and per stage",
        "",
        "Produced by `python benchmarks/quality.py` (see its docstring); every number below comes from that run,",
        "on this project's 2-core CPU machine. Figures hold generated images only (dataset images are not kept in",
        "this repository); `stagegen reconstruct` shows inputs and reconstructions together.",
        "",
        "Models: `vae`, `resvae`, `msvae` are the paper's three with the authors' losses (l2 + KL averaged over",
        "latent elements); `cal-vae` is the VAE with stagegen's calibrated trunk (Gaussian decoder with sigma^2 = the",
        "batch MSE, KL summed per image); `sharp` is that trunk plus the l1 refiner (`sharp-digits`, `sharp-mnist`);",
        "`sharp-adv` adds an adversarial third stage; `sharp-gan` is the calibrated trunk plus a refiner trained with",
        "l1 and an adversarial loss on reconstructions and prior samples (the sample path); `ladder` runs the",
        "calibrated trunk at half the resolution and lets that refiner upsample x2 (the `sharp-celeba64` preset).",
        "`+normal` samples z ~ N(0, I) as the paper does; `+gmm` samples the same trained weights from a Gaussian",
        "mixture fitted to the training images' posterior means after training. `realism` is the held-out accuracy",
        "of a small classifier trained to tell samples from test images (0.5: indistinguishable; docs/evaluation.md).",
        "",
    ]
    sections = _existing_sections(path)
    for name, r in results.items():
        s = r["settings"]
        length = (
            f"{s['time_budget'] / 60:.0f} minutes of training each (equal wall-clock)"
            if s.get("time_budget")
            else f"{s['steps']} steps"
        )
        lines = [
            f"## {name}",
            "",
            f"{s['image_size']}x{s['image_size']}, {length}, batch {s['batch']}, Adam lr {s['lr']} (beta1 0.5), seed 0; "
            f"trunk widths {s['trunk']['widths']}, latent {s['trunk']['latent_dim']}; refiners width {s['refiner']['width']}, "
            f"{s['refiner']['blocks']} residual blocks; mixture of {s['components']} full-covariance Gaussians. "
            f"Evaluated on {r['reports'][r['models'][0]]['n_real']} test images and {r['reports'][r['models'][0]]['n_samples']} "
            "prior samples per model.",
            "",
        ]
        rep0 = r["reports"][r["models"][0]]
        has_cls = "classifier" in rep0
        head = ["model", "stages", "recon PSNR", "recon sharpness", "sample sharpness", "sample SWD (fine ... coarse)"]
        has_realism = "sample_realism" in rep0["stages"][-1]
        if has_realism:
            head.append("realism")
        if has_cls:
            head += ["sample FID", "recognised", "coverage"]
        head += ["steps", "train s"]
        lines += ["Final stage of each model:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label in r["models"]:
            rep = r["reports"][label]
            f = rep["stages"][-1]
            cells = [
                label,
                ",".join(x["type"] for x in rep["stages"]),
                _cell(f["recon_psnr"]),
                _cell(f["recon_sharpness"]),
                _cell(f["sample_sharpness"]),
                " / ".join(f"{v:.2f}" for v in f["sample_swd"]),
            ]
            if has_realism:
                cells.append(_cell(f.get("sample_realism")))
            if has_cls:
                cells += [_cell(f.get("sample_fid"), 1), _cell(f.get("sample_confident")), _cell(f.get("sample_coverage"))]
            cells += [str(r.get("steps", {}).get(label, "")), f"{r['seconds'][label]:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
        if has_cls:
            lines += [
                "",
                f"FID and recognition use stagegen's own {rep0['classifier']} classifier (test accuracy "
                f'{rep0["classifier_test_accuracy"]:.2%}). "recognised": share of samples it labels with >= 0.9 '
                f'confidence; "coverage": normalised entropy of the predicted-class histogram. Real test images: '
                f"recognised {rep0['real_confident']:.2f}, coverage {rep0['real_coverage']:.2f}.",
            ]
        if r.get("prior_fit_seconds") is not None:
            lines += [
                "",
                f"Fitting the mixture to the `sharp` model's training posteriors took {r['prior_fit_seconds']:.1f} s "
                f"({100 * r['prior_fit_seconds'] / r['seconds']['sharp+gmm']:.1f}% of its training time).",
            ]
        if r.get("curve"):
            lines += [
                "",
                "Time to quality (`sharp`, final-stage recognition of 1,000 prior samples; cumulative wall-clock "
                "seconds of training and prior fitting):",
                "",
                "| step | seconds | recognised | coverage |",
                "|---|---|---|---|",
            ]
            lines += [f"| {c['step']} | {c['seconds']:.0f} | {c['recognised']:.2f} | {c['coverage']:.2f} |" for c in r["curve"]]
        order = ", ".join(m.split("+")[0] for m in r["models"] if m.endswith("+gmm"))
        lines += [
            "",
            f"![samples, N(0, I)](results-{name}-samples-normal.png)",
            "",
            f"Prior samples under N(0, I) (seed 1), one row per model: {order}.",
            "",
            f"![samples, fitted prior](results-{name}-samples-gmm.png)",
            "",
            f"The same models sampled from the fitted mixture (seed 1): {order}.",
            "",
            f"![reconstructions](results-{name}-reconstructions.png)",
            "",
            f"Reconstructions of ten test images (inputs not shown): {order}.",
            "",
        ]
        for model in ("msvae", "sharp", "sharp-adv", "sharp-gan", "ladder"):
            if f"{model}+gmm" in r["models"]:
                lines += [
                    f"![{model} stages](results-{name}-{model}-stages.png)",
                    "",
                    f"{model}+gmm: each stage's output for the same latents, coarse (top) to final (bottom).",
                    "",
                ]
        lines += ["Per-stage tables:", ""]
        for label in r["models"]:
            lines += [format_table(r["reports"][label], title=label), ""]
        sections[name] = "\n".join(lines)
    kept = (
        path.read_text().split(HAND_WRITTEN, 1)[1]
        if path.is_file() and HAND_WRITTEN in path.read_text()
        else "\n## Reading the numbers\n\n(to be written after looking at the run)\n"
    )
    body = "\n".join(header) + "\n" + "\n".join(sections[name] for name in _ordered(sections))
    path.write_text(body + "\n" + HAND_WRITTEN + kept)


def _existing_sections(path: Path) -> dict[str, str]:
    """The generated ``## <dataset>`` sections of an earlier results.md, by dataset: a run of
    some datasets rewrites theirs and keeps the others as they were."""
    if not path.is_file():
        return {}
    generated = path.read_text().split(HAND_WRITTEN, 1)[0]
    sections, name = {}, None
    for line in generated.splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
            sections[name] = []
        if name is not None:
            sections[name].append(line)
    return {k: "\n".join(v).rstrip() + "\n" for k, v in sections.items()}


def _ordered(sections: dict[str, str]) -> list[str]:
    known = [name for name in SETTINGS if name in sections]
    return known + [name for name in sections if name not in known]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="digits,mnist,celeba")
    p.add_argument("--models", help=f"comma-separated subset of {','.join(models(SETTINGS['digits']))} (default: per dataset)")
    p.add_argument("--steps", type=int, help="override the steps of every dataset")
    p.add_argument("--eval-images", type=int, default=1000)
    p.add_argument("--runs", default=str(ROOT / "runs" / "quality"), help="where the trained pipelines go")
    p.add_argument("--retrain", action="store_true", help="train again even where a pipeline exists")
    p.add_argument("--out", type=Path, default=DOCS / "results.md")
    p.add_argument(
        "--rerender", action="store_true", help="only figures and markdown again, from the runs' saved pipelines and reports"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    # a run of some datasets keeps the others' results from an earlier run (same --runs folder)
    saved = Path(args.runs) / "results.json"
    results = json.loads(saved.read_text()) if saved.is_file() else {}
    if args.rerender:
        rerender({name: results[name] for name in args.datasets.split(",") if name in results}, args)
        print(f"wrote {args.out}")
        return
    for name in args.datasets.split(","):
        results[name] = run_dataset(name, args, args.out.parent)
        Path(args.runs).mkdir(parents=True, exist_ok=True)
        (Path(args.runs) / "results.json").write_text(json.dumps(results, indent=2, default=str))
        write_markdown(results, args.out)  # after each dataset, so a long run shows its progress
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
