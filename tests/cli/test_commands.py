"""The command line, end to end, in real subprocesses (as a user runs it)."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

import stagegen


def run(*args, cwd=None, check=True, env=None):
    proc = subprocess.run(
        [sys.executable, "-m", "stagegen", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"stagegen {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


SMALL = [
    "-O",
    "vae.widths=[16,32]",
    "-O",
    "vae.latent_dim=16",
    "-O",
    "resnet-l1.width=16",
    "-O",
    "resnet-l1.blocks=2",
    "-O",
    "resnet-l1.head_width=16",
    "--batch-size",
    "32",
    "--no-progress",
    "-O",
    "train.log_every=20",
]


@pytest.mark.slow
def test_train_on_embedded_data_then_load_and_sample(tmp_path):
    out = tmp_path / "run"
    proc = run("train", "--stages", "vae,resnet-l1", "--steps", "120", "--out", str(out), *SMALL)
    assert "pipeline:" in proc.stdout
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    lines = [r for r in records if "loss" in r]
    # the default trunk's loss is a Gaussian NLL per pixel: it falls below zero as sigma shrinks
    assert lines[-1]["loss"] < lines[0]["loss"] - 0.2 * abs(lines[0]["loss"]), "the loss did not fall"
    assert lines[0]["step"] == 1 and "stage0/bpd" in lines[-1]
    assert records[-1]["event"] == "prior_fit" and records[-1]["prior"] == "gmm"
    assert "reconstructions:" in proc.stdout
    pipe = stagegen.load(out / "pipeline.safetensors")
    stages = pipe.sample(4, seed=0, return_stages=True)
    assert [s.shape[-1] for s in stages] == [16, 16]
    from PIL import Image

    grid = Image.open(out / "samples.png")
    assert grid.size[1] > grid.size[0] / 8  # two rows (one per stage) of eight images

    proc = run("sample", str(out / "pipeline.safetensors"), "-n", "6", "-o", str(tmp_path / "grid.png"), "--all-stages")
    assert (tmp_path / "grid.png").is_file()
    run("sample", str(out / "pipeline.safetensors"), "-n", "3", "-o", str(tmp_path / "single"))
    assert len(list((tmp_path / "single").glob("*.png"))) == 3
    proc = run("info", str(out / "pipeline.safetensors"))
    assert "resnet-l1 (refiner)" in proc.stdout and "latent_dim = 16" in proc.stdout
    assert re.search(r"prior: gmm from stagegen \S+ \(components=10", proc.stdout), proc.stdout  # with who provided it


@pytest.mark.slow
def test_four_stage_chain_trains_saves_loads_and_samples_every_stage(tmp_path):
    out = tmp_path / "run"
    run(
        "train",
        "--stages",
        "vae,resnet-l1,srresnet-perceptual,adversarial",
        "--steps",
        "4",
        "--out",
        str(out),
        "--image-size",
        "16",
        *SMALL[:4],
        "-O",
        "1.width=8",
        "-O",
        "1.blocks=1",
        "-O",
        "1.head_width=8",
        "-O",
        "2.width=8",
        "-O",
        "2.blocks=1",
        "-O",
        "2.scale=2",
        "-O",
        "2.pretrained=false",
        "-O",
        "2.backbone=lpips-squeeze",
        "-O",
        "3.width=8",
        "-O",
        "3.blocks=1",
        "-O",
        "3.disc_width=8",
        "--batch-size",
        "8",
        "--no-progress",
    )
    pipe = stagegen.load(out / "pipeline.safetensors")
    stages = pipe.sample(2, seed=1, return_stages=True)
    assert [tuple(s.shape) for s in stages] == [(2, 1, 8, 8), (2, 1, 8, 8), (2, 1, 16, 16), (2, 1, 16, 16)]
    assert all(torch.isfinite(s).all() for s in stages)


def test_run_header_says_what_is_trained(tmp_path):
    proc = run("train", "--steps", "2", "--out", str(tmp_path / "r"), *SMALL[:10], "--batch-size", "8")
    header = proc.stderr
    assert "stagegen: training vae 16x16 -> resnet-l1 16x16" in header and "M parameters" in header
    assert "1 channel(s), prior gmm" in header
    assert "data: digits train split, 1500 images at 16x16" in header
    assert "device: cpu; 2 steps of batch 8" in header
    assert "fitted the gmm prior to 1500 training images" in header
    # what the logged bpd is, said once, since its name invites a comparison with papers it cannot bear
    assert header.count("note: stage0/bpd is the training batches' negative ELBO") == 1
    assert "not the test-set bits per dimension papers report" in header


def test_bad_option_is_named(tmp_path):
    proc = run("train", "--steps", "1", "--out", str(tmp_path / "r"), "-O", "resnet-l1.depth=3", check=False)
    assert proc.returncode != 0
    assert "unknown option 'depth'" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("train", "--steps", "1", "--out", str(tmp_path / "r"), "--stages", "vae,nope", check=False)
    assert "no stage type named 'nope'" in proc.stderr


def test_config_file_sets_stage_options(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps(
            {
                "pipeline": {
                    "stages": [
                        {"type": "vae", "options": {"latent_dim": 4, "widths": [8]}},
                        {"type": "resnet-l2", "options": {"width": 4, "blocks": 0, "head_width": 4}},
                    ]
                },
                "train": {"steps": 2, "batch_size": 8, "progress": False},
            }
        )
    )
    run("train", "--config", str(config), "--out", str(tmp_path / "r"))
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["pipeline"]["stages"][1]["type"] == "resnet-l2"
    assert saved["pipeline"]["stages"][0]["options"]["latent_dim"] == 4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": {"stepz": 3}}))
    proc = run("train", "--config", str(bad), check=False)
    assert proc.returncode != 0 and "train.stepz" in proc.stderr


def test_plugins_lists_every_builtin_with_options():
    proc = run("plugins", "--json")
    rows = {(r["kind"], r["name"]): r for r in json.loads(proc.stdout)}
    refiners = {name for kind, name in rows if kind == "refiner"}
    assert {"resnet-l1", "resnet-l2", "srresnet-perceptual", "adversarial", "resnet-gan"} <= refiners
    assert ("trunk", "vae") in rows
    assert rows["refiner", "resnet-l1"]["options"]["blocks"]["default"] == 5
    assert rows["refiner", "resnet-l1"]["network"] == "resnet" and rows["refiner", "resnet-l1"]["losses"] == [{"type": "l1"}]
    assert {"resnet", "srresnet"} <= {name for kind, name in rows if kind == "network"}
    losses = {name for kind, name in rows if kind == "loss"}
    assert {"l1", "l2", "charbonnier", "gradient", "frequency", "perceptual", "adversarial"} <= losses
    assert rows["loss", "adversarial"]["options"]["feature_matching"]["description"]
    assert rows["refiner", "adversarial"]["package"] == "stagegen"
    # a network is listed once, as a network, not again as a stage type
    assert ("refiner", "resnet") not in rows


def test_presets_are_listed_and_valid():
    from stagegen.config.presets import compose_run_config, preset_names

    proc = run("presets")
    for name in preset_names():
        assert name in proc.stdout
        config = compose_run_config(name)  # every preset validates
        assert config.pipeline.stages[0].type == "vae"
    mnist = compose_run_config("msvae-mnist")
    assert (mnist.pipeline.image_size, mnist.train.batch_size, mnist.train.lr, mnist.train.steps) == (28, 256, 1e-3, 100_000)
    assert mnist.pipeline.stages[0].options["latent_dim"] == 128
    celeba = compose_run_config("msvae-celeba", train__steps=5)
    assert (celeba.pipeline.image_size, celeba.train.batch_size, celeba.train.lr, celeba.train.steps) == (128, 32, 2e-4, 5)
    resvae = compose_run_config("resvae-mnist")
    assert resvae.pipeline.stages[0].options["recon_loss"] == "none" and resvae.pipeline.stages[1].type == "resnet-l2"


def test_every_command_has_help():
    for command in ["train", "sample", "info", "plugins", "datasets", "presets"]:
        assert "Usage" in run(command, "--help").stdout


def test_fit_prior_writes_a_new_file_that_samples_from_it(tmp_path):
    out = tmp_path / "run"
    run("train", "--steps", "3", "--out", str(out), "--prior", "normal", *SMALL)
    original = stagegen.load(out / "pipeline.safetensors")
    assert original.config.prior.type == "normal"
    fitted = tmp_path / "gmm.safetensors"
    proc = run(
        "fit-prior",
        str(out / "pipeline.safetensors"),
        "--prior",
        "gmm",
        "-O",
        "components=3",
        "-O",
        "prior.covariance=diag",
        "-o",
        str(fitted),
    )
    assert "fitted a gmm prior to 1500 digits train images" in proc.stdout
    pipe = stagegen.load(fitted)
    assert pipe.config.prior.type == "gmm" and pipe.config.prior.options["components"] == 3
    assert pipe.prior.fitted and pipe.file_metadata["extra"]["prior_fit"]["prior_fit_images"] == 1500
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(pipe.reconstruct(x), original.reconstruct(x))  # the networks are untouched
    run("sample", str(fitted), "-n", "4", "-o", str(tmp_path / "s.png"))
    bad = run(
        "fit-prior",
        str(out / "pipeline.safetensors"),
        "--prior",
        "gmm",
        "-O",
        "componentz=3",
        "-o",
        str(tmp_path / "x.safetensors"),
        check=False,
    )
    assert bad.returncode != 0 and "unknown option 'componentz'" in bad.stderr and "Traceback" not in bad.stderr


def test_plugins_lists_priors():
    rows = {r["name"]: r for r in json.loads(run("plugins", "--json").stdout)}
    assert {rows[n]["kind"] for n in ("normal", "gmm", "latent-vae")} == {"prior"}
    assert rows["gmm"]["options"]["components"]["default"] == 10


def test_time_budget_values(tmp_path):
    proc = run("train", "--time-budget", "soon", "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode != 0 and "not a duration" in proc.stderr
    proc = run("train", "--time-budget", "1s", "--steps", "100000", "--out", str(tmp_path / "r"), *SMALL)
    assert "the time budget ended the run early" in proc.stdout and (tmp_path / "r" / "pipeline.safetensors").is_file()
