"""Datasets that are hostile or odd: oversize files and zip entries are skipped and named before
they are read; every image mode keeps its full range; a cache file that was tampered with, torn
or forged is rebuilt, never served."""

import json
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from stagegen.data import open_dataset
from stagegen.data.decode import MAX_FILE_BYTES, MAX_PIXELS, ImageTransform, decode_image

from ..hostile import run_bounded


def _png(path, value=128, size=8, mode="L"):
    Image.new(mode, (size, size), value).save(path)


def _folder(tmp_path, n=6):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(n):
        _png(root / f"ok{i}.png", 20 * i)
    return root


def _open(root, cache=None, **options):
    return open_dataset(
        "folder",
        str(root),
        "train",
        8,
        1,
        {"val_fraction": 0, "test_fraction": 0, **options},
        cache_dir=str(cache) if cache else "off",
    )


def test_zip_bomb_entry_is_skipped_and_named_without_being_inflated(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i in range(4):
            buf = tmp_path / f"{i}.png"
            _png(buf, 40 * i)
            z.write(buf, f"img{i}.png")
        with z.open("bomb.png", "w", force_zip64=True) as entry:  # 3 GiB of zeros, about 3 MB compressed
            chunk = bytes(64 * 2**20)
            for _ in range(48):
                entry.write(chunk)
    assert archive.stat().st_size < 8 * 2**20
    code = (
        "import warnings, json\n"
        "from stagegen.data import open_dataset\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    d = open_dataset('folder', sys.argv[1], 'train', 8, 1, {'val_fraction': 0, 'test_fraction': 0}, cache_dir='off')\n"
        "print(json.dumps({'n': len(d), 'warnings': [str(x.message) for x in w]}))\n"
    )
    proc = run_bounded(code, str(archive), memory_bytes=2**30, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["n"] == 4
    assert any("bomb.png" in w and "uncompressed" in w for w in report["warnings"]), report


def test_zip_entry_whose_directory_lies_about_its_size_is_still_bounded(tmp_path, monkeypatch):
    import stagegen.data.sources as sources

    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.png", bytes(4096))
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", 1024)
    source = sources.ZipSource(archive)
    # honest directory: refused from the claim, before inflating
    with pytest.raises(sources.ImageTooLarge, match="4,096 bytes uncompressed"):
        source.read("big.png")
    # a directory that understates the size: zipfile stops at the claimed size and the CRC fails,
    # so at most min(claim, MAX_FILE_BYTES + 1) bytes are ever inflated
    source._handle().getinfo("big.png").file_size = 100
    with pytest.raises((sources.ImageTooLarge, zipfile.BadZipFile)):
        source.read("big.png")


def test_oversize_file_on_disk_is_skipped_and_named_without_being_read(tmp_path):
    root = _folder(tmp_path)
    with open(root / "huge.png", "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.warns(UserWarning, match=r"huge\.png \(ImageTooLarge: a [\d,]+-byte file"):
        data = _open(root)
    assert len(data) == 6


def test_decompression_bomb_canvas_is_refused_before_decoding(tmp_path):
    side = int(MAX_PIXELS**0.5) + 16
    path = tmp_path / "canvas.png"
    Image.new("1", (side, side)).save(path)  # a few KB on disk, gigapixels when decoded as RGB
    assert path.stat().st_size < 2**20
    with pytest.raises(ValueError, match="pixels, more than"):
        decode_image(path.read_bytes(), ImageTransform(8, 3))


def _decode_mean(image, channels=1):
    import io

    buf = io.BytesIO()
    fmt = "TIFF" if image.mode in ("I;16B", "F", "CMYK", "I") else "PNG"
    image.save(buf, format=fmt)
    return decode_image(buf.getvalue(), ImageTransform(8, channels)).float().mean().item()


@pytest.mark.parametrize(
    "name,make,expected",
    [
        ("16-bit grey PNG (I;16)", lambda: Image.fromarray(np.full((8, 8), 32768, np.uint16)), 128),
        (
            "16-bit big-endian TIFF (I;16B)",
            lambda: (
                Image.fromarray(np.full((8, 8), 32768, np.uint16)).convert("I").convert("I;16B")
                if False
                else Image.frombytes("I;16B", (8, 8), np.full((8, 8), 32768, ">u2").tobytes())
            ),
            128,
        ),
        ("32-bit integer holding 16-bit values (I)", lambda: Image.fromarray(np.full((8, 8), 16384, np.int32)), 64),
        ("32-bit integer full range (I)", lambda: Image.fromarray(np.full((8, 8), 2**30, np.int32)), 128),
        ("float in [0, 1] (F)", lambda: Image.fromarray(np.full((8, 8), 0.25, np.float32)), 64),
        ("float in [0, 255] (F)", lambda: Image.fromarray(np.full((8, 8), 200.0, np.float32)), 200),
        ("grey with alpha (LA), opaque", lambda: Image.new("LA", (8, 8), (100, 255)), 100),
        ("grey with alpha (LA), half transparent", lambda: Image.new("LA", (8, 8), (200, 128)), 100),
        ("CMYK", lambda: Image.new("CMYK", (8, 8), (0, 0, 0, 0)), 255),
    ],
)
def test_every_mode_keeps_its_range(name, make, expected):
    assert _decode_mean(make()) == pytest.approx(expected, abs=2), name


def test_real_16bit_png_file_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")  # what Pillow makes of a 16-bit PNG on read
    value = decode_image(path.read_bytes(), ImageTransform(8, 1)).float().mean().item()
    assert value == pytest.approx(128, abs=1)  # Pillow's convert("L") alone gives 255


def test_palette_with_transparency_and_pa_are_composited(tmp_path):
    p = Image.new("P", (8, 8), 1)
    p.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    p.info["transparency"] = 1  # the white index is transparent
    path = tmp_path / "p.png"
    p.save(path, transparency=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's palette-transparency warning must not fire either
        rgb = decode_image(path.read_bytes(), ImageTransform(8, 3))
    assert rgb.float().mean().item() == pytest.approx(0, abs=1)  # transparent white -> black
    from stagegen.data.decode import to_8bit

    pa = Image.new("PA", (8, 8), (1, 128))  # Pillow writes PA to no file format: converted in memory
    pa.putpalette([0, 0, 0, 200, 200, 200] + [0] * 762)
    assert np.asarray(to_8bit(pa, "RGB")).mean() == pytest.approx(100, abs=2)  # half transparent over black


# ---------------------------------------------------------------------------- the decoded cache


def _cache_files(cache):
    (data,) = cache.glob("*.u8")
    (meta,) = cache.glob("*.json")
    return data, meta


def test_bytes_flipped_in_place_are_detected_and_the_cache_rebuilt(tmp_path):
    root, cache = _folder(tmp_path), tmp_path / "cache"
    first = _open(root, cache)
    reference = first[0].clone()
    data, _ = _cache_files(cache)
    raw = bytearray(data.read_bytes())
    raw[3] ^= 0xFF  # same size, different content
    data.write_bytes(bytes(raw))
    again = _open(root, cache)
    assert not again.cache_hit
    assert (again[0] == reference).all()
    assert _open(root, cache).cache_hit  # the rebuilt cache is trusted again


def test_forged_sidecar_is_not_trusted(tmp_path):
    root, cache = _folder(tmp_path), tmp_path / "cache"
    _open(root, cache)
    data, meta = _cache_files(cache)
    doc = json.loads(meta.read_text())
    doc.update(count=1, names=doc["names"][:1], bytes=64)
    meta.write_text(json.dumps(doc))
    data.write_bytes(bytes(64))  # a blank file of the size the forged count claims
    again = _open(root, cache)
    assert not again.cache_hit and len(again) == 6


@pytest.mark.parametrize("damage", ["empty data file", "count zero", "sidecar not JSON", "sidecar a list", "count a string"])
def test_torn_or_empty_cache_is_rebuilt(tmp_path, damage):
    root, cache = _folder(tmp_path), tmp_path / "cache"
    _open(root, cache)
    data, meta = _cache_files(cache)
    doc = json.loads(meta.read_text())
    if damage == "empty data file":
        data.write_bytes(b"")
    elif damage == "count zero":
        doc.update(count=0, names=[], bytes=0)
        data.write_bytes(b"")
        meta.write_text(json.dumps(doc))
    elif damage == "sidecar not JSON":
        meta.write_text("{")
    elif damage == "sidecar a list":
        meta.write_text("[]")
    else:
        doc.update(count="6")
        meta.write_text(json.dumps(doc))
    again = _open(root, cache)
    assert not again.cache_hit and len(again) == 6
    assert _open(root, cache).cache_hit


def test_full_disk_while_writing_the_cache_costs_the_cache_not_the_run(tmp_path, small_filesystem):
    root = _folder(tmp_path, n=100)
    cache = small_filesystem(tmp_path / "full", free_bytes=4096)  # room for less than the 100 x 64-byte images
    with pytest.warns(UserWarning, match="could not write the decoded cache.*No space left"):
        data = _open(root, cache)
    assert len(data) == 100 and not getattr(data, "cache_hit", False)
    assert not list(cache.glob("*")), "a partial cache file was left behind"


# ---------------------------------------------------------------------------- round two


def _read_only(path, monkeypatch):
    """A folder on a read-only filesystem (a read-only tmpfs where the tests may mount one), else
    a folder without write permission; the test is skipped where neither can be made."""
    import os
    import subprocess
    import sys

    path.mkdir(parents=True, exist_ok=True)
    if sys.platform == "linux" and os.geteuid() == 0:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=4096", "tmpfs", str(path)], capture_output=True)
        if proc.returncode == 0:
            return path, lambda: subprocess.run(["umount", "-l", str(path)], capture_output=True)
        pytest.skip("root cannot mount a read-only tmpfs here, and permissions do not bind root")
    path.chmod(0o555)
    return path, lambda: path.chmod(0o755)


def test_a_read_only_cache_folder_costs_the_cache_not_the_run(tmp_path, monkeypatch):
    root = _folder(tmp_path)
    cache, undo = _read_only(tmp_path / "ro-cache", monkeypatch)
    try:
        with pytest.warns(UserWarning, match="could not write the decoded cache .*continuing with the images in memory"):
            data = _open(root, cache)
        assert len(data) == 6
    finally:
        undo()


CONTROL_NAME = "bad\x1b]0;owned\x07\x1b[2J\r.png"


def test_a_bad_image_named_with_terminal_escapes_is_reported_escaped(tmp_path):
    root = _folder(tmp_path)
    (root / CONTROL_NAME).write_bytes(b"not an image")
    with pytest.warns(UserWarning) as caught:
        _open(root)
    message = str(caught[0].message)
    assert "skipped 1 unreadable image(s)" in message and "\\x1b]0;owned\\x07" in message
    assert not any(c in message for c in "\x1b\x07\r")


def test_a_zip_entry_named_with_terminal_escapes_is_reported_escaped(tmp_path):
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(4):
            buf = __import__("io").BytesIO()
            Image.new("L", (8, 8), 40 * i).save(buf, format="PNG")
            z.writestr(f"ok{i}.png", buf.getvalue())
        z.writestr(CONTROL_NAME, b"not an image")
    with pytest.warns(UserWarning) as caught:
        _open(archive)
    assert not any(c in str(caught[0].message) for c in "\x1b\x07\r")


def test_a_sidecar_with_a_5000_digit_number_is_rebuilt(tmp_path):
    root, cache = _folder(tmp_path), tmp_path / "cache"
    _open(root, cache)
    _, meta = _cache_files(cache)
    meta.write_text(meta.read_text().replace('"count": 6', '"count": ' + "9" * 5000))
    again = _open(root, cache)  # "Exceeds the limit (4300 digits)" broke every later run
    assert not again.cache_hit and len(again) == 6 and _open(root, cache).cache_hit


def test_lab_images_are_converted_not_skipped(tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    for i in range(3):
        Image.new("LAB", (8, 8), (200, 128, 128)).save(root / f"lab{i}.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a skipped image warns
        data = _open(root)
    assert len(data) == 3 and abs(float(data[0].float().mean()) - 194) < 3  # L = 78 % is sRGB grey 194


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00\x08", "only 3 byte(s); expected magic number 00000803"),
        (b"\x00\x00\x08\x03" + b"\x00" * 6, "is truncated: an MNIST idx file of 3 dimension(s) starts with a 16-byte header"),
        (b"\x00\x00\x08\x03" + b"\xff" * 12 + b"\x00" * 16, "is truncated: the header says (4294967295, 4294967295, 4294967295)"),
    ],
)
def test_mnist_files_too_short_or_lying_are_named(tmp_path, content, message):
    from stagegen.data.mnist import _read_idx
    from stagegen.data.registry import DataError

    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        _read_idx(path, 0x00000803)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_a_celeba_partition_file_that_is_not_text_is_named(tmp_path):
    from stagegen.data.celeba import _partition
    from stagegen.data.registry import DataError

    path = tmp_path / "list_eval_partition.txt"
    path.write_bytes(b"000001.jpg 0\n\xff\xfe\n")
    with pytest.raises(DataError, match=f"{path} is not CelebA's partition file: not text"):
        _partition(path)
