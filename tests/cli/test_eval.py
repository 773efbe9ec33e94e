"""reconstruct, interpolate, eval and compare on pipelines trained by `stagegen train`."""

import json

import pytest
from PIL import Image

from .test_commands import SMALL, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    paths = {}
    for name, stages in (("vae", "vae"), ("msvae", "vae,resnet-l1")):
        out = root / name
        args = ["train", "--stages", stages, "--steps", "30", "--out", str(out), *SMALL]
        if stages == "vae":  # resnet-l1 options do not apply to a vae-only chain
            args = ["train", "--stages", "vae", "--steps", "30", "--out", str(out), *SMALL[:4], *SMALL[10:]]
        run(*args)
        paths[name] = out / "pipeline.safetensors"
    return paths


@pytest.mark.slow
def test_reconstruct_writes_input_row_plus_one_row_per_stage(trained, tmp_path):
    out = tmp_path / "recon.png"
    run("reconstruct", str(trained["msvae"]), "-n", "6", "-o", str(out))
    one_row = tmp_path / "one.png"
    run("reconstruct", str(trained["vae"]), "-n", "6", "-o", str(one_row))
    h3, h2 = Image.open(out).size[1], Image.open(one_row).size[1]
    assert h3 > h2  # three rows (input, coarse, refined) against two (input, vae)


@pytest.mark.slow
def test_interpolate(trained, tmp_path):
    run("interpolate", str(trained["msvae"]), "--steps", "5", "--rows", "2", "-o", str(tmp_path / "i.png"))
    run("interpolate", str(trained["msvae"]), "--from-data", "--rows", "1", "--all-stages", "-o", str(tmp_path / "j.png"))
    assert (tmp_path / "i.png").is_file() and (tmp_path / "j.png").is_file()
    # each row is labelled (a margin on the left): wider than 5 images of 48 px with 2 px padding
    assert Image.open(tmp_path / "i.png").size[0] > 5 * 50 + 2


@pytest.mark.slow
def test_eval_reports_every_stage(trained):
    proc = run("eval", str(trained["msvae"]), "--metrics", "psnr,ssim,sharpness,swd", "--limit", "64", "--json")
    report = json.loads(proc.stdout)
    assert [s["type"] for s in report["stages"]] == ["vae", "resnet-l1"]
    for stage in report["stages"]:
        assert 5 < stage["recon_psnr"] < 60 and 0 < stage["recon_ssim"] <= 1
        assert stage["sample_sharpness"] > 0 and len(stage["sample_swd"]) == 2
    proc = run("eval", str(trained["msvae"]), "--metrics", "psnr,nonsense", check=False)
    assert proc.returncode != 0 and "nonsense" in proc.stderr


@pytest.mark.slow
def test_compare_writes_figures_and_tables(trained, tmp_path):
    out = tmp_path / "cmp.png"
    run(
        "compare",
        str(trained["vae"]),
        str(trained["msvae"]),
        "--names",
        "vae,msvae",
        "--metrics",
        "psnr,sharpness",
        "--limit",
        "32",
        "-o",
        str(out),
    )
    assert out.is_file() and (tmp_path / "cmp-samples.png").is_file()
    tables = (tmp_path / "cmp.md").read_text()
    assert "**vae**" in tables and "**msvae**" in tables and "recon_psnr" in tables
    reports = json.loads((tmp_path / "cmp.json").read_text())
    assert set(reports) == {"vae", "msvae"}


def test_missing_inception_weights_message(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    proc = run(
        "eval",
        str(trained["vae"]),
        "--metrics",
        "fid",
        "--fid-features",
        "inception",
        "--limit",
        "8",
        check=False,
        env={"TORCH_HOME": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert "inception_v3_google-0cc3c7bd.pth" in proc.stderr and "--inception-weights" in proc.stderr


@pytest.mark.slow
def test_eval_reports_recognisability_and_fid_with_the_digits_classifier(trained, classifier_cache):
    env = {"STAGEGEN_CACHE": str(classifier_cache)}
    proc = run("eval", str(trained["msvae"]), "--metrics", "fid,recognisability", "--samples", "200", "--json", env=env)
    report = json.loads(proc.stdout)
    assert report["classifier"] == "digits" and report["classifier_test_accuracy"] > 0.95
    assert report["real_confident"] > 0.9 and report["real_coverage"] > 0.95
    for stage in report["stages"]:
        assert 0 <= stage["sample_confident"] <= 1 and 0 <= stage["sample_coverage"] <= 1 and stage["sample_fid"] > 0
    table = run("eval", str(trained["msvae"]), "--metrics", "recognisability", "--samples", "50", env=env).stdout
    assert "sample_confident" in table and "sample_coverage" in table


def test_mnist_classifier_reuses_the_data_root(monkeypatch, tmp_path):
    from stagegen.metrics import classifiers
    from stagegen.metrics.resources import provide_resources

    asked = []
    monkeypatch.setattr(
        classifiers, "load_classifier", lambda name, root=None, progress=True: asked.append((name, root)) or (None, 0.99)
    )
    options = {"classifier": "auto", "fid_features": "auto"}
    got = provide_resources({"fid_features", "classifier"}, "mnist", str(tmp_path), options)
    assert asked == [("mnist", str(tmp_path))]  # one classifier serves both
    assert got["classifier"].name == "mnist" and got["fid_features"].name == "mnist"
    assert provide_resources({"classifier"}, "celeba", str(tmp_path), options) == {"classifier": None}
