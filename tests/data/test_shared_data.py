"""The real data in ../shared/data, where present (skipped with the reason where not)."""

import hashlib
import zipfile
from pathlib import Path

import pytest

from stagegen.data import open_dataset

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
MNIST = SHARED / "mnist"
CELEBA = SHARED / "celeba"

needs_mnist = pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte.gz").is_file(), reason=f"real MNIST not found at {MNIST}")
needs_celeba = pytest.mark.skipif(
    not (CELEBA / "img_align_celeba.zip").is_file(), reason=f"real CelebA subset not found at {CELEBA}"
)

MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


@needs_mnist
def test_real_mnist_checksums_and_counts():
    for name, md5 in MD5.items():
        assert hashlib.md5((MNIST / name).read_bytes()).hexdigest() == md5, name
    assert len(open_dataset("mnist", str(MNIST), "train", 28, 1)) == 60000
    test = open_dataset("mnist", str(MNIST), "test", 28, 1)
    assert len(test) == 10000
    assert abs(test.images.float().mean().item() - 33.791) < 0.01  # the README's mean pixel


@needs_celeba
def test_real_celeba_split_sizes():
    from stagegen.data.celeba import _partition

    with zipfile.ZipFile(CELEBA / "img_align_celeba.zip") as z:
        names = [n.rsplit("/", 1)[-1] for n in z.namelist() if n.endswith(".jpg")]
    assert len(names) == 10211
    table = _partition(CELEBA / "list_eval_partition.txt")
    assert len(table) == 202599
    counts = {s: sum(table[n] == s for n in names) for s in ("train", "val", "test")}
    assert counts == {"train": 8771, "val": 780, "test": 660}
    val = open_dataset("celeba", str(CELEBA), "val", 64, 3, {"workers": 2})
    assert len(val) == 780 and val[0].shape == (3, 64, 64)


@needs_mnist
def test_real_mnist_declares_the_official_labels():
    from stagegen.data.labels import labels_of

    labels = labels_of(open_dataset("mnist", str(MNIST), "test", 28, 1))
    assert labels.names == tuple("0123456789")
    assert labels.counts() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # the t10k file's


@needs_celeba
def test_real_celeba_attribute_list_is_partial_and_says_so():
    from stagegen.data.attributes import attributes_for, read_attribute_file

    path = CELEBA / "list_attr_celeba.txt"
    table = read_attribute_file(path)
    assert len(table.names) == 40 and len(table.rows) == 20000 and table.declared == 202599
    assert "its first line says 202,599 images, it holds rows for 20,000 (a partial file)" in table.note
    with zipfile.ZipFile(CELEBA / "img_align_celeba.zip") as z:
        names = [n for n in z.namelist() if n.endswith(".jpg")]
    attributes = attributes_for(path, names)
    assert int(attributes.known.sum()) == 4759  # as ../shared/data/README.md says
    assert attributes.note.endswith("4,759 of these 10,211 images have attributes")
