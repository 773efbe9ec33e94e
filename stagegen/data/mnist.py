"""MNIST from the four official idx files (.gz or uncompressed), flat or in torchvision's
MNIST/raw/ layout. Downloads only when asked, with md5 verification."""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from ..files import atomic_write
from .digits import DIGIT_NAMES
from .labels import Labels
from .registry import DataError, DataRequest, DatasetOptions
from .tensors import TensorImages, convert_channels, resize_uint8

FILES = {
    "train-images": ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels": ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test-images": ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    "test-labels": ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
}
MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]


class MNISTOptions(DatasetOptions):
    val_size: int = Field(0, ge=0, lt=60000, description="last images of the training file held out as the val split")
    download: bool = Field(False, description="download the four files into --data-root when they are missing (needs internet)")


def _find(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


#: the official training images are 47 MB; a file that inflates past this is not MNIST
MAX_IDX_BYTES = 256 * 2**20


def _read_idx(path: Path, magic: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read(MAX_IDX_BYTES + 1)  # bounded: a small .gz can inflate to any size
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} cannot be read ({exc}): damaged or truncated; replace it with the official file") from None
    if len(data) > MAX_IDX_BYTES:
        raise DataError(f"{path} holds more than {MAX_IDX_BYTES:,} bytes (uncompressed): not an MNIST idx file")
    if len(data) < 4 or struct.unpack(">I", data[:4])[0] != magic:
        found = f"magic number {data[:4].hex()}" if len(data) >= 4 else f"only {len(data)} byte(s)"
        raise DataError(f"{path} is not an MNIST idx file ({found}; expected magic number {magic:08x})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path} is truncated: an MNIST idx file of {ndim} dimension(s) starts with a {header}-byte header, "
            f"this one holds {len(data)} bytes; replace it with the official file"
        )
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    body = data[header:]
    expected = math.prod(dims)  # Python integers: dimensions of 2^32 - 1 do not overflow
    if len(body) != expected:
        what = "is truncated" if len(body) < expected else "does not match its header"
        raise DataError(f"{path} {what}: the header says {dims} ({expected:,} bytes) but it holds {len(body):,}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def read_labels(root: str | Path, stem: str) -> np.ndarray:
    """The labels of an MNIST label file (``stem`` as in FILES, .gz or not) under ``root``."""
    path = _find(Path(root), stem)
    if path is None:
        raise DataError(f"no {stem}(.gz) under {root}: the MNIST label files are needed too")
    return _read_idx(path, 0x00000801)


def download(root: Path) -> None:
    import urllib.request

    root.mkdir(parents=True, exist_ok=True)
    for stem, md5 in FILES.values():
        target = root / f"{stem}.gz"
        if target.is_file():
            continue
        last_error = None
        for mirror in MIRRORS:
            try:
                with urllib.request.urlopen(mirror + target.name, timeout=30) as response:
                    data = response.read()
            except OSError as exc:
                last_error = exc
                continue
            if hashlib.md5(data).hexdigest() != md5:
                last_error = ValueError(f"md5 mismatch for {target.name} from {mirror}")
                continue
            atomic_write(target, lambda tmp, data=data: Path(tmp).write_bytes(data))
            break
        else:
            raise DataError(f"could not download {target.name} ({last_error}); put the official file in {root} by hand")


def build_mnist(request: DataRequest) -> TensorImages:
    o: MNISTOptions = request.options
    root = Path(request.root)
    if o.download:
        download(root)
    which = "test" if request.split == "test" else "train"
    images_path = _find(root, FILES[f"{which}-images"][0])
    if images_path is None:
        wanted = ", ".join(f"{s}.gz" for s, _ in FILES.values())
        raise DataError(
            f"no MNIST files under {root}: put the four official files ({wanted}) in that folder or in "
            f"{root}/MNIST/raw/, or add -O data.options.download=true on a machine with internet"
        )
    images = _read_idx(images_path, 0x00000803)
    labels = _labels_for(root, which, len(images))
    if which == "train" and o.val_size:
        part = slice(-o.val_size, None) if request.split == "val" else slice(None, -o.val_size)
        images, labels = images[part], labels[part] if labels is not None else None
    elif request.split == "val":
        raise DataError("MNIST has no val split unless you hold one out: add -O data.options.val_size=5000")
    tensor = torch.from_numpy(images.copy()).unsqueeze(1)
    tensor = convert_channels(resize_uint8(tensor, request.image_size), request.channels)
    declared = Labels(DIGIT_NAMES, torch.from_numpy(labels.astype(np.int64))) if labels is not None else None
    return TensorImages(tensor, labels=declared)


def _labels_for(root: Path, which: str, n: int) -> np.ndarray | None:
    """The digits of the ``which`` images (train or test); None, said once, where the label
    file is absent (the images still train an unconditional model). A label file that does not
    match the images is an error: labels off by one image would fit every class wrongly."""
    stem = FILES[f"{which}-labels"][0]
    if _find(root, stem) is None:
        print(f"stagegen: no {stem}(.gz) under {root}: the MNIST {which} images are used without their labels")
        return None
    labels = read_labels(root, stem)
    if len(labels) != n or labels.ndim != 1 or int(labels.max(initial=0)) > 9:
        raise DataError(
            f"{_find(root, stem)} does not match the {which} images ({len(labels)} labels for {n} images, "
            f"largest {int(labels.max(initial=0))}); replace it with the official file"
        )
    return labels
