"""Datasets declare their labels: the digits and MNIST their ten digits, image folders their
class subfolders (ImageFolder's convention); flat folders stay unlabelled."""

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from stagegen.data import DataError, open_dataset
from stagegen.data.digits import labelled_split
from stagegen.data.labels import Labels, folder_labels, labels_of, resolve_label

from .test_datasets import _idx


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), value).save(buf, format="PNG")
    return buf.getvalue()


def test_the_digits_declare_their_digit_per_image():
    dataset = open_dataset("digits", split="test", image_size=16)
    labels = labels_of(dataset)
    assert labels.names == tuple("0123456789")
    _, expected = labelled_split("test", 16)  # the classifier's own reading of the same split
    assert torch.equal(labels.index, expected)
    assert sum(labels.counts()) == len(dataset) and min(labels.counts()) > 5


def test_folder_labels_follow_imagefolder():
    labels = folder_labels(["cat/a.png", "dog/b.png", "cat/c.png"])
    assert labels.names == ("cat", "dog") and labels.index.tolist() == [0, 1, 0]
    # a zip's top folder, shared by every image, names no class
    assert folder_labels(["pets/cat/a.png", "pets/dog/b.png"]).names == ("cat", "dog")
    # flat, images beside the class folders, or a single class: unlabelled
    assert folder_labels(["a.png", "b.png"]) is None
    assert folder_labels(["cat/a.png", "b.png"]) is None
    assert folder_labels(["cat/a.png", "cat/b.png"]) is None
    # classes are read off the whole collection: a split without dogs numbers cats and emus alike
    split = folder_labels(["emu/e.png"], every_name=["cat/a.png", "dog/b.png", "emu/e.png"])
    assert split.names == ("cat", "dog", "emu") and split.index.tolist() == [2]


@pytest.mark.parametrize("as_zip", [False, True])
def test_a_folder_of_class_folders_is_labelled_image_by_image(tmp_path, as_zip):
    files = {f"{cls}/{i}.png": _png(value) for cls, value in (("dark", 20), ("light", 230)) for i in range(12)}
    files["light/broken.png"] = b"not a png"  # skipped: the labels must stay aligned with the images kept
    if as_zip:
        root = tmp_path / "set.zip"
        with zipfile.ZipFile(root, "w") as z:
            for name, data in files.items():
                z.writestr(name, data)
    else:
        root = tmp_path / "set"
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
    options = {"val_fraction": 0.0, "test_fraction": 0.0}
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        dataset = open_dataset("folder", str(root), "train", 8, 1, options)
    labels = labels_of(dataset)
    assert labels.names == ("dark", "light") and len(dataset) == 24
    for i in range(len(dataset)):  # each image's label is the class its pixels came from
        assert labels.names[int(labels.index[i])] == ("dark" if int(dataset[i].float().mean()) < 128 else "light")


def test_a_flat_folder_is_unlabelled(tmp_path):
    for i in range(6):
        (tmp_path / f"{i}.png").write_bytes(_png(10 * i))
    dataset = open_dataset("folder", str(tmp_path), "train", 8, 1, {"val_fraction": 0.0, "test_fraction": 0.0})
    assert labels_of(dataset) is None


def test_mnist_labels_follow_the_images_and_their_val_split(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (10, 28, 28), dtype=np.uint8)
    digits = np.arange(10, dtype=np.uint8)[::-1].copy()
    _idx(tmp_path / "train-images-idx3-ubyte", images, 0x803, False)
    _idx(tmp_path / "t10k-images-idx3-ubyte", images[:4], 0x803, False)
    # no label files yet: the images still train an unconditional model, and the run says so
    assert labels_of(open_dataset("mnist", str(tmp_path), "train", 28, 1)) is None
    assert "used without their labels" in capsys.readouterr().out
    _idx(tmp_path / "train-labels-idx1-ubyte", digits, 0x801, True)
    _idx(tmp_path / "t10k-labels-idx1-ubyte", digits[:4], 0x801, False)
    train = labels_of(open_dataset("mnist", str(tmp_path), "train", 28, 1, {"val_size": 3}))
    val = labels_of(open_dataset("mnist", str(tmp_path), "val", 28, 1, {"val_size": 3}))
    assert train.index.tolist() == digits[:7].tolist() and val.index.tolist() == digits[7:].tolist()
    assert labels_of(open_dataset("mnist", str(tmp_path), "test", 28, 1)).index.tolist() == digits[:4].tolist()
    # a label file that does not match its images would label every image wrongly: refused
    _idx(tmp_path / "t10k-labels-idx1-ubyte", digits[:3], 0x801, False)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte does not match the test images \(3 labels for 4 images"):
        open_dataset("mnist", str(tmp_path), "test", 28, 1)


def test_labels_are_checked_and_resolved_by_name_or_index():
    names = ("cat", "dog", "emu")
    assert resolve_label(names, "dog") == 1 and resolve_label(names, 2) == 2 and resolve_label(names, "0") == 0
    digits = tuple("0123456789")
    assert resolve_label(digits, "7") == 7 and resolve_label(digits, 7) == 7
    with pytest.raises(
        ValueError, match=r"unknown label 'yak': this pipeline's labels are cat, dog, emu \(by name, or by index 0..2\)"
    ):
        resolve_label(names, "yak")
    with pytest.raises(ValueError, match="unknown label 3"):
        resolve_label(names, 3)
    with pytest.raises(ValueError, match="at least two classes"):
        Labels(("cat",), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="must lie in 0..1"):
        Labels(("cat", "dog"), torch.tensor([0, 2]))


@pytest.mark.parametrize(
    ("classes", "said"),
    [
        (["a" * 200, "b"], "is 200 characters; a name has at most 100"),
        (["cat", "dog\x1b]0;x\x07"], "holds a control or format character"),
        ([f"c{i}" for i in range(1001)], "1,001 names, more than the 1,000"),
    ],
    ids=["overlong", "control character", "too many"],
)
def test_class_folders_that_cannot_be_labels_leave_the_images_unlabelled_and_say_why(classes, said):
    with pytest.warns(UserWarning, match=said):
        assert folder_labels([f"{c}/a.png" for c in classes]) is None
