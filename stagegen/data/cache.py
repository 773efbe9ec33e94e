"""Decode every image of a split once, then serve uint8 tensors from memory or a memory map.

The first pass decodes (in parallel worker processes) and, with a cache folder, writes one
raw uint8 file plus a JSON sidecar naming the source fingerprint and the transform. A later
run whose source and transform match reads the file memory-mapped; any change rebuilds it.
Bad images are skipped during the pass, counted and reported once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..files import atomic_write
from ..text import safe_name
from .decode import ImageTransform, decode_image
from .registry import DataError
from .sources import ImageSource
from .tensors import TensorImages

CACHE_FORMAT = 2  # 2: the sidecar holds the data file's size and SHA-256


def default_cache_dir() -> Path | None:
    """$STAGEGEN_CACHE, else ~/.cache/stagegen/datasets; 'off' disables caching."""
    value = os.environ.get("STAGEGEN_CACHE")
    if value == "off":
        return None
    return Path(value) if value else Path.home() / ".cache" / "stagegen" / "datasets"


class _Decode(Dataset):
    def __init__(self, names: list[str], load: Callable[[str], torch.Tensor]):
        self.names, self.load = names, load

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        try:
            return i, self.load(self.names[i]), None
        except Exception as exc:  # a corrupt or truncated image: skipped and counted
            return i, None, f"{type(exc).__name__}: {exc}"


def _collate(items):
    return items


def _decode_all(what, names, load, shape, fail_on_bad: bool, workers: int) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """The images that decode to ``shape`` and their names; the others, with why, are skipped
    with one warning (or refused, with ``fail_on_bad``)."""
    images = np.empty((len(names), *shape), dtype=np.uint8)
    kept: list[str] = []
    bad: list[tuple[str, str]] = []
    loader = DataLoader(_Decode(names, load), batch_size=64, num_workers=workers, collate_fn=_collate)
    for batch in loader:
        for i, tensor, error in batch:
            if error is None and tuple(tensor.shape) != shape:
                error = f"decoded to shape {tuple(tensor.shape)}, expected {shape}"
            if error is not None:
                if fail_on_bad:
                    raise DataError(
                        safe_name(f"{what}: cannot use image {names[i]!r} ({error}); the data option fail_on_bad is on")
                    )
                bad.append((names[i], error))
                continue
            images[len(kept)] = tensor.numpy()
            kept.append(names[i])
    if bad:
        first = "; ".join(f"{n} ({e})" for n, e in bad[:3])
        # reported once, when the split is decoded (a cached split holds only the good images); a
        # file name is the data's text, escaped: it must not retitle, clear or recolour the terminal
        message = f"{what}: skipped {len(bad)} unreadable image(s) of {len(names)}; first: {first}"
        warnings.warn(safe_name(message), stacklevel=3)
    if not kept:
        raise DataError(f"{what}: none of the {len(names)} images could be read")
    return images[: len(kept)], kept, bad


def materialize(
    what: str,
    names: list[str],
    load: Callable[[str], torch.Tensor],
    shape: tuple[int, int, int],
    key: dict,
    cache_dir: str | Path | None,
    fail_on_bad: bool = False,
    workers: int = 0,
) -> TensorImages:
    """All ``names`` decoded by ``load`` into one uint8 tensor (cached when cache_dir is set)."""
    if cache_dir == "off":
        cache_dir = None
    elif cache_dir is None:
        cache_dir = default_cache_dir()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        data_path, meta_path = cache_dir / f"{digest}.u8", cache_dir / f"{digest}.json"
        hit = _read_cache(data_path, meta_path, key, shape)
        if hit is not None:
            return hit

    images, kept, bad = _decode_all(what, names, load, shape, fail_on_bad, workers)
    if cache_dir is not None:
        try:
            _write_cache(data_path, meta_path, images, kept, key, bad)
        except OSError as exc:  # a full disk or a read-only cache folder costs the cache, not the run
            for leftover in (meta_path, data_path):
                with contextlib.suppress(OSError):  # a read-only folder refuses the cleanup too
                    leftover.unlink(missing_ok=True)
            warnings.warn(
                f"{what}: could not write the decoded cache in {cache_dir} ({exc.strerror or exc}); "
                "continuing with the images in memory, and the next run decodes them again",
                stacklevel=2,
            )
            return TensorImages(torch.from_numpy(images), kept)
        # serve from the map, not a second copy; its checksum was just computed from these very bytes
        written = _read_cache(data_path, meta_path, key, shape, verify=False)
        if written is not None:
            written.cache_hit = False
            return written
    return TensorImages(torch.from_numpy(images), kept)


def sha256_of(data) -> str:
    """SHA-256 of a buffer or of a file's bytes (read in 4 MiB pieces)."""
    h = hashlib.sha256()
    if isinstance(data, Path):
        with open(data, "rb") as f:
            while chunk := f.read(4 * 2**20):
                h.update(chunk)
    else:
        h.update(memoryview(data).cast("B"))
    return h.hexdigest()


def _write_cache(data_path: Path, meta_path: Path, images: np.ndarray, names: list[str], key: dict, bad) -> None:
    images = np.ascontiguousarray(images)

    def write(tmp):
        with open(tmp, "wb") as f:  # a Python file: a full disk raises OSError(ENOSPC), not a C-level error
            f.write(memoryview(images).cast("B"))

    atomic_write(data_path, write)
    meta = {
        "format": CACHE_FORMAT,
        "key": key,
        "count": len(names),
        "shape": list(images.shape[1:]),
        "names": names,
        "skipped": [n for n, _ in bad],
        "bytes": images.nbytes,
        "sha256": sha256_of(images),
    }
    # the sidecar is written last: a data file without it is never trusted
    atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta)))


#: a sidecar lists every image's name; 200,000 CelebA names take 4 MB
MAX_SIDECAR_BYTES = 256 * 2**20


def _read_cache(
    data_path: Path, meta_path: Path, key: dict, shape: tuple[int, int, int], verify: bool = True
) -> TensorImages | None:
    """The cached split, or None (then it is rebuilt) when anything disagrees: the sidecar's
    format, key or shape, the count against the names and the file's size, or the file's bytes
    against the checksum the sidecar recorded (one read of the file, which training reads anyway;
    skipped with ``verify=False`` right after writing, when the checksum was taken from the same bytes)."""
    if not (data_path.is_file() and meta_path.is_file()) or meta_path.stat().st_size > MAX_SIDECAR_BYTES:
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError, RecursionError):  # ValueError: bad UTF-8 or JSON, a 5,000-digit number
        return None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != CACHE_FORMAT
        or meta.get("key") != key
        or meta.get("shape") != list(shape)
    ):
        return None
    count, names = meta.get("count"), meta.get("names")
    if type(count) is not int or count < 1 or not isinstance(names, list) or len(names) != count:
        return None
    size = count * int(np.prod(shape))
    if meta.get("bytes") != size or data_path.stat().st_size != size:
        return None  # torn or foreign file: rebuild
    if verify and meta.get("sha256") != sha256_of(data_path):
        return None  # altered in place: rebuild
    array = np.memmap(data_path, dtype=np.uint8, mode="c", shape=(count, *shape))
    dataset = TensorImages(torch.from_numpy(array), names)
    dataset.cache_hit = True
    return dataset


def load_images(
    what: str,
    source: ImageSource,
    names: list[str],
    transform: ImageTransform,
    cache_dir: str | None,
    fail_on_bad: bool,
    workers: int,
) -> TensorImages:
    """Decode ``names`` from ``source`` through ``transform`` once, cached (see cache.materialize)."""
    key = {
        "source": source.fingerprint(),
        "names": hashlib.sha256(json.dumps(names).encode()).hexdigest(),
        "transform": transform.key(),
    }
    shape = (transform.channels, transform.image_size, transform.image_size)
    load = lambda name: decode_image(source.read(name), transform)  # noqa: E731
    return materialize(what, names, load, shape, key, cache_dir, fail_on_bad, workers)
