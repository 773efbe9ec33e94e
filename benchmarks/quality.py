"""Sample quality, measured: the paper's three models as the paper set them, the same trained
models with a fitted prior, and stagegen's calibrated presets, at equal budgets on the
embedded digits, real MNIST and CelebA 64x64, over several training seeds.

    python benchmarks/quality.py --datasets digits                # trains, evaluates, writes benchmarks/results/quality-digits.json
    python benchmarks/quality.py --render                         # docs/results.md again from the committed files
    python benchmarks/quality.py --check                          # fails where docs/results.md and the files disagree
    python benchmarks/quality.py --datasets digits --steps 300    # a quick look (written under runs/, never over the committed files)

Every model on a dataset shares the trunk architecture, latent size, batch, steps, learning rate
and seed; they differ in their losses and refiner stages. "+gmm" rows are the same trained
weights with a Gaussian mixture fitted to the training posteriors afterwards (no retraining).
The headline models (each dataset's default preset and the paper's models) train once per seed
of ``--seeds`` (training and evaluation both use the seed), the others on the first seed only.
Each finished model is written to the dataset's JSON file at once, so a killed run keeps what
it measured and a second run goes on from there (``--retrain`` starts again). The file holds the
commit, the machine, its load before and after each training run, and every report in full;
docs/results.md is rendered from it (benchmarks/pages.py). Widths are smaller than the paper's
so that each dataset finishes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import CODE, machine  # noqa: E402
from pages import spread  # noqa: E402

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
        "models": "vae,resvae,msvae,cal-vae,sharp,sharp-adv",
        "headline": "vae,resvae,msvae,sharp",  # the paper's three; sharp-digits, the default preset
        "eval_images": 1000,  # the test split holds 193: every one of them
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
        # the sharp-mnist preset's refiner
        "gan": {"width": 32, "blocks": 2, "weight": 0.02, "disc_width": 32, "train_from": 0},
        "models": "vae,resvae,msvae,cal-vae,sharp,sharp-adv,sharp-gan",
        "headline": "vae,resvae,msvae,sharp",  # the paper's three; sharp-mnist, the dataset's preset
        "eval_images": 2000,  # the realism critic trains and tests on 1,000 images a side
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
        "models": "cal-vae,msvae,sharp,sharp-gan,ladder",
        "headline": "msvae,ladder",  # the paper's model; the ladder is sharp-celeba64, the default preset
        "eval_images": 1000,  # the test split holds 660 faces: every one of them
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


def _config(s: dict, stages: list[dict], steps: int, seed: int) -> dict:
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
            "seed": seed,
            "progress": False,
            "log_every": 100,
            "sample_every": 0,
            "checkpoint_every": 0,
            "time_budget": s.get("time_budget"),
            "sample_path_batch": s.get("sample_path_batch"),
        },
        "data": {**s["data"], "split": "train"},
    }


def _train(s: dict, stages: list[dict], run_dir: Path, seed: int) -> dict:
    """Train one model; its wall time (prior fit included) and the machine's highest one-minute
    load average while it ran, sampled every few seconds: a time measured while something else
    ran is marked so on the page."""
    import threading

    from stagegen.train import train

    loads, done = [os.getloadavg()[0]], threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            loads.append(os.getloadavg()[0])

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    start = time.perf_counter()
    try:
        train(_config(s, stages, s["steps"], seed), run_dir, overwrite=True)  # --retrain replaces an earlier run
    finally:
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
    loads.append(os.getloadavg()[0])
    return {"train_seconds": seconds, "load_before": loads[0], "load_after": loads[-1], "load_max": max(loads)}


def _provenance(command: list[str]) -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    return {
        "command": "python benchmarks/quality.py " + " ".join(command),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no", "--", *CODE)),
        "machine": machine(),
        "cores": os.cpu_count(),
    }


def _write(path: Path, result: dict) -> None:
    """Atomically: a run killed while writing keeps the file of the model before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def _evaluate_both_priors(pipe, s, real, seed, fid, classifier) -> dict:
    """The same trained weights sampled from N(0, I) and from the mixture fitted at the end of training."""
    from stagegen.metrics import evaluate

    fitted = {k: v.clone() for k, v in pipe.prior.state_dict().items()}
    reports = {}
    pipe.set_prior({"type": "normal"})
    reports["normal"] = evaluate(pipe, real, n_samples=s["eval_images"], seed=seed, fid_features=fid, classifier=classifier)
    pipe.set_prior({"type": "gmm", "options": {"components": s["components"]}})
    pipe.prior.load_state_dict(fitted)
    reports["gmm"] = evaluate(pipe, real, n_samples=s["eval_images"], seed=seed, fid_features=fid, classifier=classifier)
    return reports


def measure_model(s: dict, name: str, model: str, stages: list[dict], seed: int, args, real, fid, classifier) -> dict:
    """Train one model on one seed, evaluate it from both priors, and time a prior fit (sharp)."""
    from stagegen import load
    from stagegen.data import open_dataset
    from stagegen.priors import fit_prior

    run_dir = Path(args.runs) / name / model / f"seed{seed}"
    record = _train(s, stages, run_dir, seed)
    pipe = load(run_dir / "pipeline.safetensors")
    record["steps"] = pipe.file_metadata.get("extra", {}).get("train_steps")
    start = time.perf_counter()
    record["reports"] = _evaluate_both_priors(pipe, s, real, seed, fid, classifier)
    record["eval_seconds"] = time.perf_counter() - start
    if model == "sharp":  # how long fitting a prior takes, beside training
        train_set = open_dataset(s["data"]["name"], s["data"]["root"], "train", s["image_size"], s["channels"])
        start = time.perf_counter()
        fit_prior(load(run_dir / "pipeline.safetensors"), train_set, seed=seed)
        record["prior_fit_seconds"] = time.perf_counter() - start
    print(
        f"{name}/{model} seed {seed}: trained in {record['train_seconds']:.0f} s, evaluated in {record['eval_seconds']:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return record


def run_dataset(name: str, args, argv: list[str]) -> dict:
    from stagegen.data.real import real_images
    from stagegen.metrics.classifiers import Classifier
    from stagegen.metrics.fid import ClassifierFeatures

    s = dict(SETTINGS[name])
    if args.steps:
        s["steps"] = args.steps
    if args.eval_images:
        s["eval_images"] = args.eval_images
    path = Path(args.results) / f"quality-{name}.json"
    result = json.loads(path.read_text()) if path.is_file() and not args.retrain else {}
    if result.get("settings") != json.loads(json.dumps(s, default=str)):
        result = {}  # measured with other settings: nothing of it carries over
    result.update(benchmark="quality", dataset=name, settings=s, **_provenance(argv))
    result.setdefault("runs", {})
    classifier = Classifier(s["classifier"], s["data"]["root"]) if s["classifier"] else None
    fid = ClassifierFeatures(classifier=classifier) if classifier else None
    real = real_images(s["data"]["name"], s["data"]["root"], "test", s["image_size"], s["channels"], s["eval_images"])
    seeds = [int(x) for x in args.seeds.split(",")]
    headline = s["headline"].split(",")
    wanted = (args.models or s["models"]).split(",")
    # seeds outside, models inside: a run cut short has every model on the first seed
    for seed in seeds:
        for model, stages in models(s).items():
            if model not in wanted or (model not in headline and seed != seeds[0]):
                continue
            done = result["runs"].setdefault(model, {})
            if str(seed) in done:
                continue
            done[str(seed)] = measure_model(s, name, model, stages, seed, args, real, fid, classifier)
            result["seeds"] = sorted({int(k) for runs in result["runs"].values() for k in runs})
            result["written"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            result["summary"] = summarise(result["runs"])
            _write(path, result)
    if not args.no_figures:
        write_figures(name, s, args, real)
    return result


def _entry(values: list[float]) -> dict:
    """Values over seeds with their mean and standard deviation, as the JSON summary holds them."""
    mean, sd = spread(values)
    return {"values": values, "mean": mean, "sd": sd}


def summarise(runs: dict) -> dict:
    """Per model and prior, per stage: every numeric value over the seeds, with mean and standard
    deviation (lists, such as SWD's pyramid levels, element by element)."""
    summary = {}
    for model, by_seed in runs.items():
        for prior in ("normal", "gmm"):
            reports = [by_seed[k]["reports"][prior] for k in sorted(by_seed, key=int)]
            stages = []
            for k, row in enumerate(reports[0]["stages"]):
                entry = {"stage": k, "type": row["type"], "resolution": row["resolution"]}
                for column, value in row.items():
                    if column in entry or isinstance(value, (str, bool)) or value is None:
                        continue
                    values = [r["stages"][k].get(column) for r in reports]
                    if any(v is None for v in values):
                        continue
                    if isinstance(value, list):
                        levels = list(zip(*values))
                        entry[column] = {
                            "values": values,
                            "mean": [statistics.fmean(v) for v in levels],
                            "sd": [statistics.stdev(v) if len(v) > 1 else 0.0 for v in levels],
                        }
                    else:
                        entry[column] = _entry(values)
                stages.append(entry)
            extra = {}
            for key in ("real_realism", "real_confident", "real_coverage", "classifier_test_accuracy"):
                if key in reports[0]:
                    extra[key] = reports[0][key]
            summary[f"{model}+{prior}"] = {
                "seeds": len(reports),
                "stages": stages,
                "n_real": reports[0]["n_real"],
                "n_samples": reports[0]["n_samples"],
                **extra,
            }
        seconds = [r["train_seconds"] for r in by_seed.values()]
        summary[model] = {
            "train_seconds": _entry(seconds),
            "steps": [r.get("steps") for r in by_seed.values()],
        }
    return summary


#: a one-minute load average above this on the 2-core machine means something else ran beside the benchmark
BUSY_LOAD = 3.0
STAGE_FIGURES = ("msvae", "sharp", "ladder")  # the grids docs/results.md shows


def write_figures(name: str, s: dict, args, real) -> None:
    """Sample grids per prior, reconstructions, and each multi-stage model's stage grid, from the
    first seed's pipelines. Generated images only: the dataset's own images are never written
    into this repository."""
    from stagegen import load
    from stagegen.images import save_grid

    first = args.seeds.split(",")[0]
    pipes = {}
    for model in models(s):
        path = Path(args.runs) / name / model / f"seed{first}" / "pipeline.safetensors"
        if path.is_file():
            pipes[model] = load(path)
    if not pipes:
        return
    figures = Path(args.figures)
    rows = {"gmm": [], "normal": []}
    for pipe in pipes.values():
        rows["gmm"].append(pipe.sample(10, seed=1))
    save_grid(rows["gmm"], figures / f"results-{name}-samples-gmm.png")
    save_grid([p.reconstruct(real[:10]) for p in pipes.values()], figures / f"results-{name}-reconstructions.png")
    for model in STAGE_FIGURES:
        if model in pipes:
            save_grid(pipes[model].sample(10, seed=1, return_stages=True), figures / f"results-{name}-{model}-stages.png")
    for pipe in pipes.values():
        pipe.set_prior({"type": "normal"})
        rows["normal"].append(pipe.sample(10, seed=1))
    save_grid(rows["normal"], figures / f"results-{name}-samples-normal.png")


# ------------------------------------------------------------------ what docs/results.md shows (benchmarks/pages.py)


def _data(name: str) -> dict:
    from pages import load as load_result

    return load_result(f"quality-{name}")


def _pm(entry, digits=2, scale=1.0) -> str:
    """mean ± sd of a summary entry (a single seed: the value)."""
    if entry is None:
        return ""
    mean, sd = entry["mean"] * scale, entry["sd"] * scale
    return f"{mean:.{digits}f}" if len(entry["values"]) == 1 else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _finest(entry) -> dict | None:
    if entry is None:
        return None
    return {"values": [v[0] for v in entry["values"]], "mean": entry["mean"][0], "sd": entry["sd"][0]}


def models_line(name: str) -> str:
    """The models of a dataset's file, in the benchmark's order (for figure captions)."""
    data = _data(name)
    return ", ".join(m for m in models(data["settings"]) if m in data["runs"]) + ".\n"


def prior_fit_line(name: str) -> str:
    """How long fitting the mixture took beside training (the sharp model, every seed it ran)."""
    data = _data(name)
    runs = [r for r in data["runs"].get("sharp", {}).values() if "prior_fit_seconds" in r]
    if not runs:
        return "(no `sharp` run in this file: no prior fit timed)\n"
    fit = [r["prior_fit_seconds"] for r in runs]
    share = [r["prior_fit_seconds"] / r["train_seconds"] for r in runs]
    return (
        f"Fitting the mixture to the `sharp` model's training posteriors again, encoding included, took "
        f"{_pm(_entry(fit), 1)} s "
        f"({100 * statistics.fmean(share):.1f}% of its training run, which had fitted it once already).\n"
    )


def settings_line(name: str) -> str:
    data = _data(name)
    s = data["settings"]
    length = (
        f"{s['time_budget'] / 60:.0f} minutes of training each (equal wall-clock)"
        if s.get("time_budget")
        else f"{s['steps']:,} steps"
    )
    report = data["summary"][f"{next(iter(data['runs']))}+gmm"]
    return (
        f"{s['image_size']}x{s['image_size']}, {length}, batch {s['batch']}, Adam lr {s['lr']} (beta1 0.5); trunk widths "
        f"{s['trunk']['widths']}, latent {s['trunk']['latent_dim']}; refiners width {s['refiner']['width']}, "
        f"{s['refiner']['blocks']} residual blocks; a mixture of {s['components']} full-covariance Gaussians. Headline models "
        f"({s['headline'].replace(',', ', ')}) over seeds {', '.join(map(str, data['seeds']))} (mean ± standard deviation), "
        f"the others seed {data['seeds'][0]}. Evaluated on {report['n_real']:,} test images and {report['n_samples']:,} prior "
        f"samples per model and seed. Measured by `{data['command']}` at commit {data['commit']}"
        + (" (with uncommitted changes)" if data.get("uncommitted_changes") else "")
        + f" on {data['machine']}; written {data['written']}.\n"
    )


def _busy(run: dict) -> bool:
    """Whether something else ran beside this training run (its load samples, or for a run
    recorded before they were kept, its load before and after)."""
    return max(run.get("load_max", 0), run.get("load_before", 0), run.get("load_after", 0)) > BUSY_LOAD


def _train_time(runs: dict) -> str:
    """Mean ± sd of a model's training times over its seeds, starred where any of its runs had company."""
    times = [r["train_seconds"] for r in runs.values()]
    cell = _pm(_entry(times), 0)
    return cell + (" *" if any(_busy(r) for r in runs.values()) else "")


def final_table(name: str) -> str:
    data = _data(name)
    summary = data["summary"]
    first = summary[f"{next(iter(data['runs']))}+gmm"]
    has_cls = "sample_confident" in first["stages"][-1]
    head = ["model", "seeds", "stages", "recon PSNR", "sample sharpness", "sample spectrum", "finest SWD", "realism"]
    if has_cls:
        head += ["FID", "recognised", "coverage"]
    head += ["steps", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| better | | | higher | 1 | lower | lower | 0.5 |" + (" lower | higher | higher |" if has_cls else "") + " | |")
    for model in models(data["settings"]):
        if model not in data["runs"]:
            continue
        for prior in ("normal", "gmm"):
            entry = summary[f"{model}+{prior}"]
            f = entry["stages"][-1]
            cells = [
                f"{model}+{prior}",
                str(entry["seeds"]),
                ",".join(x["type"] for x in entry["stages"]),
                _pm(f.get("recon_psnr")),
                _pm(f.get("sample_sharpness")),
                _pm(f.get("sample_spectrum")),
                _pm(_finest(f.get("sample_swd"))),
                _pm(f.get("sample_realism")),
            ]
            if has_cls:
                cells += [_pm(f.get("sample_fid"), 1), _pm(f.get("sample_confident")), _pm(f.get("sample_coverage"))]
            steps = {x for x in summary[model]["steps"] if x is not None}
            cells += [
                " / ".join(f"{x:,}" for x in sorted(steps)),
                _train_time(data["runs"][model]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _realism_change(above: dict, here: dict) -> str:
    """How far a stage's realism moved from its input's, paired seed by seed (mean ± sd of the
    differences), and whether that is beyond the noise: larger than the differences' spread over
    the seeds plus the 95% interval of one measurement."""
    deltas = [b - a for a, b in zip(above["sample_realism"]["values"], here["sample_realism"]["values"])]
    mean, sd = spread(deltas)
    interval = max(above["sample_realism_ci95"]["mean"], here["sample_realism_ci95"]["mean"])
    text = f"{mean:+.2f}" + (f" ± {sd:.2f}" if len(deltas) > 1 else "")
    return text + (" (beyond the noise)" if abs(mean) > sd + interval else " (within the noise)")


def stage_table(name: str) -> str:
    """Each multi-stage model's stages from the fitted prior, with what each refiner changed."""
    data = _data(name)
    summary = data["summary"]
    head = [
        "model",
        "stage",
        "type",
        "sample sharpness",
        "sample spectrum",
        "realism at final res",
        "realism at own res",
        "realism change from the stage above, paired by seed",
    ]
    has_cls = "sample_confident" in summary[f"{next(iter(data['runs']))}+gmm"]["stages"][-1]
    if has_cls:
        head += ["FID", "recognised"]
    # a coarse stage of another resolution (a ladder) is also judged at its own
    own = any("sample_realism_own" in stage for key, e in summary.items() if "+" in key for stage in e["stages"])
    if not own:
        head.remove("realism at own res")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in models(data["settings"]):
        entry = summary.get(f"{model}+gmm")
        if model not in data["runs"] or len(entry["stages"]) < 2:
            continue
        for k, row in enumerate(entry["stages"]):
            change = _realism_change(entry["stages"][k - 1], row) if k else ""
            cells = [
                model if k == 0 else "",
                str(k),
                f"{row['type']} {row['resolution']}px",
                _pm(row.get("sample_sharpness")),
                _pm(row.get("sample_spectrum")),
                _pm(row.get("sample_realism")),
                *([_pm(row.get("sample_realism_own"))] if own else []),
                change,
            ]
            if has_cls:
                cells += [_pm(row.get("sample_fid"), 1), _pm(row.get("sample_confident"))]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def baseline_line(name: str) -> str:
    """What the measures give the real test images themselves."""
    data = _data(name)
    report = next(iter(next(iter(data["runs"].values())).values()))["reports"]["gmm"]
    widest = max(
        stage["sample_realism_ci95"]["mean"] for key, entry in data["summary"].items() if "+" in key for stage in entry["stages"]
    )
    parts = [
        f"the realism critic on two halves of the real test images: {report['real_realism']:.2f} ± "
        f"{report['real_realism_ci95']:.2f} (95% interval; the same code as the samples' column, whose own 95% intervals "
        f"reach ±{widest:.2f} where the accuracy is near 0.5 and narrow towards 1)"
    ]
    if "real_confident" in report:
        parts.append(
            f"the {report['classifier']} classifier (test accuracy {report['classifier_test_accuracy']:.2%}) recognises "
            f"{report['real_confident']:.0%} of the real test images at >= 0.9 confidence, coverage {report['real_coverage']:.2f}"
        )
    return "Real images, measured by the same code: " + "; ".join(parts) + ".\n"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="digits,mnist,celeba")
    p.add_argument("--models", help=f"comma-separated subset of {','.join(models(SETTINGS['celeba']))} (default: per dataset)")
    p.add_argument("--seeds", default="0,1,2", help="training and evaluation seeds of the headline models (others: the first)")
    p.add_argument("--steps", type=int, help="override the steps of every dataset (a quick look: results go under --runs)")
    p.add_argument("--eval-images", type=int, help="real test images and prior samples per evaluation (default: per dataset)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "quality"), help="where the trained pipelines go")
    p.add_argument("--results", help="where the JSON files go (default: benchmarks/results; with --steps: under --runs)")
    p.add_argument("--figures", default=str(DOCS), help="where the sample grids go")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--retrain", action="store_true", help="train again what the JSON file already holds")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--render", action="store_true", help="only docs/results.md again, from the committed files")
    what.add_argument("--check", action="store_true", help="fail where docs/results.md and the committed files disagree")
    args = p.parse_args(argv)
    if args.render or args.check:
        import pages

        return pages.main(["--render" if args.render else "--check", "docs/results.md"])
    args.results = args.results or (str(Path(args.runs) / "results") if args.steps else str(RESULTS))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for name in args.datasets.split(","):
        run_dataset(name, args, argv)
    print(f"wrote {args.results}; `python benchmarks/quality.py --render` puts it on docs/results.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
