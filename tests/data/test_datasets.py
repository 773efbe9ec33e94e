import gzip
import hashlib
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stagegen.data import DataError, open_dataset


def _jpeg(color, size=(40, 30), mode="RGB", fmt="JPEG"):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format=fmt)
    return buf.getvalue()


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes() + str(p.stat().st_mtime_ns).encode())
    return h.hexdigest()


# ------------------------------------------------------------------ digits (embedded)


def test_digits_splits_are_disjoint_and_sized():
    from stagegen.data.splits import split_of

    names = {s: open_dataset("digits", split=s, image_size=16).names for s in ("train", "val", "test")}
    assert sum(len(n) for n in names.values()) == 1797 and len(set().union(*names.values())) == 1797
    assert abs(len(names["test"]) - 180) < 30 and abs(len(names["val"]) - 90) < 25  # the shares, on average
    # the one split scheme: the same hash decides a digit's split as a folder file's
    assert all(split_of(name.removeprefix("digit-"), 0.05, 0.1, 0) == "test" for name in names["test"])
    x = open_dataset("digits", image_size=16, channels=3)[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8


# ------------------------------------------------------------------ mnist


def _idx(path: Path, array: np.ndarray, magic: int, compress: bool):
    data = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_files(tmp_path, layout, compress):
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    train = np.arange(5 * 28 * 28, dtype=np.uint8).reshape(5, 28, 28)
    _idx(folder / "train-images-idx3-ubyte", train, 0x803, compress)
    _idx(folder / "t10k-images-idx3-ubyte", train[:3], 0x803, compress)
    ds = open_dataset("mnist", str(tmp_path), "train", 28, 1)
    assert len(ds) == 5 and torch.equal(ds[2][0], torch.from_numpy(train[2]))
    assert len(open_dataset("mnist", str(tmp_path), "test", 28, 1)) == 3
    held = open_dataset("mnist", str(tmp_path), "val", 28, 1, {"val_size": 2})
    assert len(held) == 2 and torch.equal(held[0][0], torch.from_numpy(train[3]))
    assert len(open_dataset("mnist", str(tmp_path), "train", 32, 1, {"val_size": 2})[0][0]) == 32


def test_mnist_missing_and_broken_files_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*MNIST/raw.*download=true"):
        open_dataset("mnist", str(tmp_path), "train", 28, 1)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 10, 28, 28) + b"\0" * 100)
    with pytest.raises(DataError, match="truncated"):
        open_dataset("mnist", str(tmp_path), "train", 28, 1)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"GIF89a" + b"\0" * 100)
    with pytest.raises(DataError, match="not an MNIST idx file"):
        open_dataset("mnist", str(tmp_path), "train", 28, 1)
    with pytest.raises(DataError, match="needs --data-root"):
        open_dataset("mnist", None, "train", 28, 1)


# ------------------------------------------------------------------ folder


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "images"
    (root / "a" / "b").mkdir(parents=True)
    for i in range(12):
        (root / ("a" if i % 2 else "a/b") / f"{i:03d}.jpg").write_bytes(_jpeg((i * 20, 0, 0)))
    (root / "p.png").write_bytes(_jpeg(3, mode="P", fmt="PNG"))  # palette
    (root / "rgba.webp").write_bytes(_jpeg((1, 2, 3, 4), mode="RGBA", fmt="WEBP"))
    (root / "gray.png").write_bytes(_jpeg(128, mode="L", fmt="PNG"))
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "truncated.jpg").write_bytes(_jpeg((9, 9, 9), size=(64, 64))[:200])
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_reads_recursively_converts_modes_and_skips_bad(image_folder):
    before = _tree_digest(image_folder)
    options = {"val_fraction": 0, "test_fraction": 0}
    with pytest.warns(UserWarning, match="skipped 2 unreadable image.*of 17; first: .*corrupt.jpg"):
        ds = open_dataset("folder", str(image_folder), "train", 16, 3, options)
    assert len(ds) == 15  # 12 jpg + palette + rgba + gray; corrupt and truncated skipped
    assert ds[0].shape == (3, 16, 16) and ds[0].dtype == torch.uint8
    assert _tree_digest(image_folder) == before, "the data source was modified"
    with pytest.raises(DataError, match="fail_on_bad"):
        open_dataset("folder", str(image_folder), "train", 16, 1, {**options, "fail_on_bad": True}, cache_dir="off")


@pytest.mark.filterwarnings("ignore:.*unreadable")
def test_folder_split_is_deterministic_and_disjoint(image_folder):
    options = {"val_fraction": 0.3, "test_fraction": 0.3}
    splits = {s: open_dataset("folder", str(image_folder), s, 8, 1, options).names for s in ("train", "val", "test")}
    assert sum(len(v) for v in splits.values()) == 15
    assert not (set(splits["train"]) & set(splits["val"])) and not (set(splits["val"]) & set(splits["test"]))
    again = open_dataset("folder", str(image_folder), "val", 8, 1, options, cache_dir="off").names
    assert again == splits["val"]


def test_zip_of_images_and_errors(tmp_path):
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(4):
            z.writestr(f"x/{i}.jpg", _jpeg((0, i * 50, 0)))
        z.writestr("readme.txt", "hi")
    ds = open_dataset("folder", str(archive), "train", 8, 3, {"val_fraction": 0, "test_fraction": 0})
    assert len(ds) == 4
    empty_zip = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty_zip, "w") as z:
        z.writestr("readme.txt", "no images")
    with pytest.raises(DataError, match="no images under .*empty.zip"):
        open_dataset("folder", str(empty_zip), "train", 8, 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images under .*empty.*expected a folder"):
        open_dataset("folder", str(tmp_path / "empty"), "train", 8, 1)
    with pytest.raises(DataError, match="does not exist"):
        open_dataset("folder", str(tmp_path / "missing"), "train", 8, 1)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="not a readable zip"):
        open_dataset("folder", str(tmp_path / "broken.zip"), "train", 8, 1)
    with pytest.raises(DataError, match="split 'test' .* has no images"):
        open_dataset("folder", str(archive), "test", 8, 1, {"val_fraction": 0, "test_fraction": 0})


def test_cache_hit_and_rebuild_on_changed_transform_or_source(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(5):
        (root / f"{i}.png").write_bytes(_jpeg((i * 40, 0, 0), fmt="PNG"))
    cache = tmp_path / "c"
    opts = {"val_fraction": 0, "test_fraction": 0}
    first = open_dataset("folder", str(root), "train", 8, 3, opts, cache_dir=str(cache))
    assert not getattr(first, "cache_hit", False)
    assert len(list(cache.glob("*.u8"))) == 1 and len(list(cache.glob("*.json"))) == 1
    second = open_dataset("folder", str(root), "train", 8, 3, opts, cache_dir=str(cache))
    assert second.cache_hit and torch.equal(first.images, second.images)
    resized = open_dataset("folder", str(root), "train", 12, 3, opts, cache_dir=str(cache))
    assert not getattr(resized, "cache_hit", False) and resized[0].shape == (3, 12, 12)
    (root / "5.png").write_bytes(_jpeg((255, 255, 255), fmt="PNG"))  # the source changed
    grown = open_dataset("folder", str(root), "train", 8, 3, opts, cache_dir=str(cache))
    assert not getattr(grown, "cache_hit", False) and len(grown) == 6
    # a torn data file (size mismatch) is rebuilt, not trusted
    for f in cache.glob("*.u8"):
        f.write_bytes(f.read_bytes()[:10])
    again = open_dataset("folder", str(root), "train", 8, 3, opts, cache_dir=str(cache))
    assert len(again) == 6 and not getattr(again, "cache_hit", False)


# ------------------------------------------------------------------ celeba layouts


@pytest.fixture
def celeba_zip(tmp_path):
    root = tmp_path / "celeba"
    root.mkdir()
    with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as z:
        for i in (1, 2, 3, 5, 8):  # a partial set
            z.writestr(f"img_align_celeba/{i:06d}.jpg", _jpeg((i * 30, 10, 10), size=(178, 218)))
    # the full partition file names images that are not in the zip
    lines = [f"{i:06d}.jpg {0 if i <= 6 else (1 if i <= 8 else 2)}" for i in range(1, 11)]
    (root / "list_eval_partition.txt").write_text("\r\n".join(lines) + "\r\n")
    return root


def test_celeba_partial_zip_with_full_partition(celeba_zip):
    train = open_dataset("celeba", str(celeba_zip), "train", 64, 3)
    assert len(train) == 4 and train[0].shape == (3, 64, 64)
    assert len(open_dataset("celeba", str(celeba_zip), "val", 64, 3)) == 1
    with pytest.raises(DataError, match="split 'test' has no images"):
        open_dataset("celeba", str(celeba_zip), "test", 64, 3)
    assert open_dataset("celeba", str(celeba_zip), "train", 128, 3)[0].shape == (3, 128, 128)


def test_celeba_extracted_folder(celeba_zip):
    with zipfile.ZipFile(celeba_zip / "img_align_celeba.zip") as z:
        z.extractall(celeba_zip / "x")
    (celeba_zip / "x" / "list_eval_partition.txt").write_bytes((celeba_zip / "list_eval_partition.txt").read_bytes())
    assert len(open_dataset("celeba", str(celeba_zip / "x"), "train", 64, 3)) == 4


def test_celeba_missing_root_says_expected_layout(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(DataError, match="img_align_celeba.zip .*list_eval_partition.txt"):
        open_dataset("celeba", str(tmp_path / "c"), "train", 64, 3)


def test_folder_crop_none_squashes_the_whole_image(tmp_path):
    root = tmp_path / "wide"
    root.mkdir()
    image = Image.new("L", (40, 10), 0)
    image.paste(255, (0, 0, 10, 10))  # a white block at the far left, outside any centered square crop
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    (root / "w.png").write_bytes(buf.getvalue())
    opts = {"val_fraction": 0, "test_fraction": 0}
    squashed = open_dataset("folder", str(root), "train", 8, 1, {**opts, "crop": "none"}, cache_dir="off")[0]
    cropped = open_dataset("folder", str(root), "train", 8, 1, opts, cache_dir="off")[0]
    assert squashed[0, :, 0].float().mean() > 200  # the left block survives squashing
    assert cropped.float().max() < 50  # and is cut away by the center crop


def test_a_loose_image_file_is_read_as_its_dataset_reads_its_images(tmp_path):
    from stagegen.data.decode import ImageTransform, decode_image
    from stagegen.plugin import get_dataset_type

    # a face with a bright border that CelebA's 148-pixel crop cuts away and a plain square keeps
    face = Image.new("RGB", (178, 218), (40, 40, 40))
    face.paste((250, 250, 250), (0, 0, 178, 30))
    root = tmp_path / "celeba" / "img_align_celeba"
    root.mkdir(parents=True)
    face.save(root / "000001.jpg", quality=95)
    (root.parent / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    celeba = get_dataset_type("celeba")
    assert celeba.image_transform(64, 3) == ImageTransform(64, 3, 148)
    assert celeba.image_transform(128, 3, {"crop": 100}) == ImageTransform(128, 3, 100)
    loose = decode_image((root / "000001.jpg").read_bytes(), celeba.image_transform(16, 3))
    assert torch.equal(loose, open_dataset("celeba", str(tmp_path / "celeba"), "train", 16, 3, cache_dir="off")[0])
    assert not torch.equal(loose, decode_image((root / "000001.jpg").read_bytes(), ImageTransform(16, 3)))
    assert get_dataset_type("folder").image_transform(8, 1, {"crop": "none"}).squash
    assert get_dataset_type("digits").image_transform(16, 1) == ImageTransform(16, 1)  # no transform: a plain square
