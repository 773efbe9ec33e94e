"""Sampling what you ask for, from the command line: a run on labelled data fits a prior per
label; `sample --label`, `fit-prior --conditional`, `info` and `eval` use it."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import stagegen

from .test_commands import SMALL, run


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    proc = run("train", "--steps", "20", "--out", str(out), *SMALL)
    return out / "pipeline.safetensors", proc


def test_a_run_on_labelled_data_fits_a_prior_per_label(labelled_run):
    path, proc = labelled_run
    assert "fitted a gmm prior per label to the same posteriors" in proc.stderr
    assert "(10 labels: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9; the fewest images of one label: 143)" in proc.stderr
    pipe = stagegen.load(path)
    assert pipe.labels == tuple("0123456789") and pipe.config.conditional.prior == pipe.config.prior
    record = [json.loads(line) for line in (path.parent / "metrics.jsonl").read_text().splitlines()][-1]
    assert record["event"] == "prior_fit" and record["conditional_labels"] == 10 and record["conditional_seconds"] > 0
    info = run("info", str(path)).stdout
    assert "labels: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 (a gmm prior per label" in info


def test_sample_a_label_or_one_row_per_label(labelled_run, tmp_path):
    path, _ = labelled_run
    proc = run("sample", str(path), "--label", "all", "-n", "3", "-o", str(tmp_path / "all.png"))
    assert "10 label(s) x 3 images" in proc.stdout
    run("sample", str(path), "--label", "7", "-n", "3", "-o", str(tmp_path / "seven.png"))
    rows, one = Image.open(tmp_path / "all.png").size[1], Image.open(tmp_path / "seven.png").size[1]
    assert 9 * one < rows < 11 * one  # ten rows, one per label
    run("sample", str(path), "--label", "7", "-n", "2", "--all-stages", "-o", str(tmp_path / "sevens"))
    assert sorted(p.name for p in (tmp_path / "sevens").iterdir()) == [
        f"label-7_stage{s}_{i:05d}.png" for s in (0, 1) for i in (0, 1)
    ]
    # the same label by name and by index draws the same images
    pipe = stagegen.load(path)
    assert torch.equal(pipe.sample(2, seed=0, label="7"), pipe.sample(2, seed=0, label=7))
    bad = run("sample", str(path), "--label", "eleven", "-o", str(tmp_path / "x.png"), check=False)
    assert bad.returncode == 2 and "unknown label 'eleven': this pipeline's labels are 0, 1" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x.png").exists()


def test_fit_prior_conditional_adds_labels_to_a_file_without_them(tmp_path):
    out = tmp_path / "run"
    run("train", "--steps", "3", "--out", str(out), *SMALL, "-O", "train.conditional_prior=false")
    original = out / "pipeline.safetensors"
    assert stagegen.load(original).labels == ()
    refused = run("sample", str(original), "--label", "3", "-o", str(tmp_path / "x.png"), check=False)
    assert refused.returncode == 2 and "no conditional prior" in refused.stderr and "--conditional" in refused.stderr
    fitted = tmp_path / "labelled.safetensors"
    proc = run("fit-prior", str(original), "--conditional", "-O", "components=2", "-o", str(fitted))
    assert "fitted a gmm prior per label (10 labels: 0, 1, 2" in proc.stdout and "to 1500 digits train images" in proc.stdout
    pipe = stagegen.load(fitted)
    assert pipe.labels == tuple("0123456789") and pipe.config.conditional.prior.options["components"] == 2
    before, after = load_file(original), load_file(fitted)
    assert all(torch.equal(before[k], after[k]) for k in before)  # networks and unconditional prior untouched
    assert set(after) - set(before) and all(k.startswith("conditional.") for k in set(after) - set(before))
    run("sample", str(fitted), "--label", "3", "-n", "2", "-o", str(tmp_path / "threes.png"))


def _flat_folder(root):
    """Eight gray images and no class folders: an unlabelled dataset."""
    root.mkdir()
    for i in range(8):
        Image.new("L", (16, 16), 30 * i).save(root / f"{i}.png")
    return root


def test_fit_prior_conditional_on_unlabelled_images_says_what_labels_are(labelled_run, tmp_path):
    path, _ = labelled_run
    flat = _flat_folder(tmp_path / "flat")
    proc = run(
        "fit-prior", str(path), "--conditional", "--data", "folder", "--data-root", str(flat), "-o", str(tmp_path / "x.safetensors"),
        "--split", "train", check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "declare no labels" in proc.stderr and "root/<class>/*.png" in proc.stderr
    assert "Traceback" not in proc.stderr


def _eval_json(path, metrics, classifier_cache):
    """`stagegen eval --json` on 20 real images, with the session's cached classifiers."""
    proc = run("eval", str(path), "--metrics", metrics, "--limit", "20", "--json", env={"STAGEGEN_CACHE": str(classifier_cache)})
    return proc, json.loads(proc.stdout)


def test_eval_measures_each_labels_samples(labelled_run, classifier_cache):
    path, _ = labelled_run
    proc, report = _eval_json(path, "label_recognisability,recognisability", classifier_cache)
    assert report["n_samples_per_label"] == 100  # at least 100 per label, however few the real images
    for stage in report["stages"]:
        shares = stage["label_recognised_per_label"]
        assert len(shares) == 10 and all(0 <= s <= 1 for s in shares)
        assert stage["label_recognised"] == pytest.approx(sum(shares) / 10) and stage["label_recognised_worst"] == min(shares)
        assert "sample_confident" in stage  # beside the unconditional numbers
    assert "and 100 of each of its 10 labels" in proc.stderr


def _tiny_celeba(root):
    """A CelebA layout: the zip, the official split, and a partial attribute list."""
    import io
    import zipfile

    root.mkdir()
    with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as z:
        for i in range(1, 41):
            buf = io.BytesIO()
            Image.new("RGB", (178, 218), (6 * i, 255 - 6 * i, 3 * i)).save(buf, format="JPEG")
            z.writestr(f"img_align_celeba/{i:06d}.jpg", buf.getvalue())
    (root / "list_eval_partition.txt").write_text("".join(f"{i:06d}.jpg {0 if i <= 36 else 2}\n" for i in range(1, 41)))
    rows = "".join(f"{i:06d}.jpg {1 if i % 2 else -1} {1 if i % 3 else -1}\n" for i in range(1, 31))
    (root / "list_attr_celeba.txt").write_text("202599\nEyeglasses Smiling\n" + rows)
    return root


def test_attributes_of_celeba_give_directions_to_sample_and_edit_along(tmp_path):
    root = _tiny_celeba(tmp_path / "celeba")
    env = {"STAGEGEN_CACHE": str(tmp_path / "cache")}
    train = ["train", "--data", "celeba", "--data-root", str(root), "--stages", "vae,resnet-l1", "--image-size", "16"]
    proc = run(*train, "--steps", "3", "--out", str(tmp_path / "run"), *SMALL, env=env)
    assert "fitted the latent directions of 2 of 2 attributes to 30 images' posteriors" in proc.stderr
    assert "it holds rows for 30 (a partial file); 30 of these 36 images have attributes" in proc.stderr
    path = tmp_path / "run" / "pipeline.safetensors"
    assert "attributes: Eyeglasses, Smiling" in run("info", str(path)).stdout
    face = tmp_path / "face.png"
    Image.new("RGB", (178, 218), (200, 40, 90)).save(face)
    proc = run("edit", str(path), str(face), "--attribute", "Smiling=+1.5", "--steps", "4", "-o", str(tmp_path / "e.png"))
    assert "1 image(s) x 2 stage(s)): each row is the input image, then 4 steps from its reconstruction (no edit)" in proc.stdout
    # the photo itself leads each row (a uniform colour survives cropping and resizing exactly)
    pixels = torch.from_numpy(np.array(Image.open(tmp_path / "e.png").convert("RGB"))).int()
    assert ((pixels - torch.tensor([200, 40, 90])).abs().max(-1).values <= 2).sum() >= 2 * 16 * 16
    one_row = run("sample", str(path), "-n", "4", "-o", str(tmp_path / "plain.png")).stdout
    run("sample", str(path), "-n", "4", "--attribute", "Eyeglasses,Smiling=-1", "-o", str(tmp_path / "glasses.png"))
    assert Image.open(tmp_path / "e.png").size[1] > Image.open(tmp_path / "plain.png").size[1] and one_row
    bad = run("sample", str(path), "--attribute", "Hat", "-o", str(tmp_path / "x.png"), check=False)
    assert bad.returncode == 2 and "unknown attribute 'Hat'; this pipeline's attributes are Eyeglasses, Smiling" in bad.stderr
    broken = run(
        "edit",
        str(path),
        str(root / "list_attr_celeba.txt"),
        "--attribute",
        "Smiling",
        "-o",
        str(tmp_path / "y.png"),
        check=False,
    )
    assert broken.returncode == 2 and "is not a readable image" in broken.stderr and "Traceback" not in broken.stderr
    # without the attribute list, asking for attributes says which file to put where
    (root / "list_attr_celeba.txt").unlink()
    proc = run("fit-prior", str(path), "--conditional", "-o", str(tmp_path / "z.safetensors"), check=False, env=env)
    assert proc.returncode == 2 and f"list_attr_celeba.txt beside its images: put the official file in {root}" in proc.stderr


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cvae"
    proc = run("train", "--steps", "40", "--out", str(out), *SMALL, "-O", "vae.classes=10", "-O", "train.conditional_prior=false")
    return out / "pipeline.safetensors", proc


def test_a_label_conditioned_trunk_samples_labels_from_the_command_line(cvae_run, tmp_path):
    path, proc = cvae_run
    assert "trunk conditioned on the labels 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 (a CVAE" in run("info", str(path)).stdout
    # the run's report draws interpolations and a row per label through the conditioned trunk
    assert "report was not written" not in proc.stderr
    assert "decoded by the label-conditioned trunk with that label" in (path.parent / "report.html").read_text()
    assert "10 label(s) x 3 images" in run("sample", str(path), "--label", "all", "-n", "3", "-o", str(tmp_path / "a.png")).stdout
    run("sample", str(path), "-n", "3", "-o", str(tmp_path / "any.png"))  # each with a label drawn at random
    # commands that encode dataset images give the trunk their labels
    run("reconstruct", str(path), "-n", "4", "-o", str(tmp_path / "r.png"))
    run("interpolate", str(path), "--from-data", "--rows", "2", "-o", str(tmp_path / "i.png"))
    assert (tmp_path / "r.png").is_file() and (tmp_path / "i.png").is_file()


def test_eval_measures_what_a_label_conditioned_trunk_draws(cvae_run, classifier_cache):
    path, _ = cvae_run
    _, report = _eval_json(path, "label_recognisability,recognisability,psnr", classifier_cache)
    assert report["label_samples_from"] == "the gmm prior, decoded with the label by the label-conditioned trunk"
    assert "drawn uniformly" in report["sample_labels"]
    final = report["stages"][-1]
    # a trunk that ignored its label would give each label about a tenth of its samples (seen: 39% after 40 steps)
    assert final["label_recognised"] > 0.25 and "recon_psnr" in final  # reconstructed with the real labels


def test_a_label_conditioned_trunk_refuses_unlabelled_images(cvae_run, tmp_path):
    path, _ = cvae_run
    flat = _flat_folder(tmp_path / "flat")
    where = ["--data", "folder", "--data-root", str(flat), "--split", "train"]
    proc = run("fit-prior", str(path), *where, "-o", str(tmp_path / "x.safetensors"), check=False)
    assert proc.returncode == 1 and "conditioned on class labels (a CVAE), and these images declare none" in proc.stderr
    # images of other classes are refused too, by name, not decoded with a digit's label
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (16, 16), 40 * i).save(tmp_path / "pets" / name / f"{i}.png")
    pets = ["--data", "folder", "--data-root", str(tmp_path / "pets"), "--split", "train"]
    proc = run("reconstruct", str(path), *pets, "-o", str(tmp_path / "r.png"), check=False)
    assert proc.returncode == 2 and "conditioned on the labels 0, 1, 2" in proc.stderr and "folder's are cat, dog" in proc.stderr
    chain = ["--preset", "sharp-digits", "-O", "vae.classes=10"]
    proc = run("train", "--steps", "2", "--out", str(tmp_path / "t"), *chain, *SMALL, *where, check=False)
    assert proc.returncode == 1 and "declares no labels" in proc.stderr and "Traceback" not in proc.stderr
