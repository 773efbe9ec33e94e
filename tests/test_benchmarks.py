"""The benchmark scripts still run (tiny settings; nothing here is timed or compared)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SHARED_CELEBA = BENCH.parents[1] / "shared" / "data" / "celeba"


def _run(script, *args):
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_train_speed_runs_and_prints_its_table():
    out = _run("train_speed.py", "--presets", "msvae-digits", "--batch", "8", "--steps", "2", "--reps", "1", "--warmup", "1")
    assert "| msvae-digits | plain |" in out and "| msvae-digits | stagegen |" in out and "conv peak" in out


@pytest.mark.slow
def test_sample_speed_runs():
    out = _run("sample_speed.py", "--presets", "msvae-digits", "--batches", "1,4", "--reps", "1")
    assert "| msvae-digits |" in out


def test_the_gpu_check_script_parses_and_names_scripts_that_exist():
    script = BENCH / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    for name in ("train_speed.py", "profile_step.py"):
        assert f"benchmarks/{name}" in text and (BENCH / name).is_file()


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_CELEBA / "img_align_celeba.zip").is_file(), reason="needs ../shared/data/celeba")
def test_the_gpu_bundle_is_a_celeba_subset_stagegen_reads(tmp_path):
    from stagegen.data import open_dataset

    _run("gpu_bundle.py", "--out", str(tmp_path), "--train-images", "40")
    root = tmp_path / "celeba"
    train = open_dataset("celeba", str(root), "train", 32, 3, cache_dir=str(tmp_path / "cache"))
    test = open_dataset("celeba", str(root), "test", 32, 3, cache_dir=str(tmp_path / "cache"))
    assert len(train) == 40 and len(test) == 660  # every test image of the shared subset
    assert train.attributes is not None  # the attribute rows of the kept images came along


@pytest.mark.slow
def test_the_ab_benchmark_measures_an_earlier_commit_beside_this_tree():
    out = _run(
        "train_speed_ab.py", "--old", "HEAD", "--presets", "sharp-digits:8", "--rounds", "1", "--steps", "1", "--reps", "1"
    )
    assert "round 0 sharp-digits old:" in out and "round 0 sharp-digits new:" in out and "| sharp-digits | 8 |" in out


def test_startup_runs_and_prints_its_table(tmp_path):
    out = _run("startup.py", "--reps", "1", "--json", str(tmp_path / "startup.json"))
    assert "| `stagegen --help` |" in out and "import torch" in out

    record = json.loads((tmp_path / "startup.json").read_text())
    assert set(record["median_seconds"]) == {line.split("`")[1] for line in out.splitlines() if line.startswith("| `")}


SHARED_MNIST = BENCH.parents[1] / "shared" / "data" / "mnist"


@pytest.mark.slow
def test_quality_writes_its_json_over_seeds_and_the_page_tables_read_it(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCH))
    import pages
    import quality

    args = ["--datasets", "digits", "--steps", "4", "--models", "vae,sharp", "--seeds", "0,1", "--eval-images", "120"]
    assert quality.main([*args, "--runs", str(tmp_path / "runs"), "--no-figures"]) == 0
    written = json.loads((tmp_path / "runs" / "results" / "quality-digits.json").read_text())
    assert written["seeds"] == [0, 1] and set(written["runs"]) == {"vae", "sharp"}
    assert written["command"].startswith("python benchmarks/quality.py --datasets digits") and written["commit"]
    realism = written["summary"]["sharp+gmm"]["stages"][-1]["sample_realism"]
    assert len(realism["values"]) == 2 and realism["sd"] >= 0
    assert "real_realism" in written["runs"]["sharp"]["0"]["reports"]["gmm"]
    monkeypatch.setattr(pages, "RESULTS", tmp_path / "runs" / "results")
    pages.load.cache_clear()
    table = quality.final_table("digits")
    assert "| sharp+gmm | 2 | vae,resnet-l1 |" in table and " ± " in table
    assert "realism change from the stage above" in quality.stage_table("digits") and "(within the noise)" in quality.stage_table(
        "digits"
    )
    pages.load.cache_clear()


@pytest.mark.slow
def test_profile_and_default_run_write_their_json(tmp_path):
    _run("profile_step.py", "--preset", "msvae-digits", "--steps", "2", "--json", str(tmp_path / "p.json"))
    profile = json.loads((tmp_path / "p.json").read_text())
    assert abs(sum(profile["group_share"].values()) - 1) < 1e-6 and profile["commit"]
    _run("default_run.py", "--json", str(tmp_path / "d.json"), "--extra", "--steps", "10")
    run = json.loads((tmp_path / "d.json").read_text())
    assert run["steps"] == 10 and run["wall_seconds"] > 0 and 0 <= run["final_stage"]["sample_confident"] <= 1


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_CELEBA / "img_align_celeba.zip").is_file(), reason="needs ../shared/data/celeba")
def test_data_speed_writes_its_json(tmp_path):
    _run("data_speed.py", "--sizes", "32", "--workers", "0", "--epochs", "1", "--json", str(tmp_path / "d.json"))
    rows = json.loads((tmp_path / "d.json").read_text())["rows"]
    assert rows[0]["size"] == 32 and rows[0]["warm_images_per_second"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file(), reason="needs ../shared/data/mnist")
def test_grid_prior_runs():
    out = _run("grid_prior.py", "--at", "4", "--steps", "6", "--samples", "50")
    assert "step 4: grid prior" in out and "step 6: the saved pipeline" in out
