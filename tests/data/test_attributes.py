"""CelebA's attribute list: read for what it holds (a partial copy says so), refused by line when
malformed, and aligned with the images of each split."""

import io
import zipfile

import pytest
import torch
from PIL import Image

from stagegen.data import DataError, open_dataset
from stagegen.data.attributes import attributes_for, attributes_of, read_attribute_file

HEADER = "202599\nEyeglasses Smiling Male\n"


def _write(path, text):
    path.write_text(text)
    return path


def test_a_partial_file_is_read_for_what_it_holds_and_says_so(tmp_path):
    path = _write(tmp_path / "list_attr_celeba.txt", HEADER + "000001.jpg -1 1 1\n000002.jpg  1 -1 -1\n")
    table = read_attribute_file(path)
    assert table.names == ("Eyeglasses", "Smiling", "Male") and table.rows["000002.jpg"] == [True, False, False]
    assert table.note == "its first line says 202,599 images, it holds rows for 2 (a partial file)"
    attributes = attributes_for(path, ["img_align_celeba/000002.jpg", "img_align_celeba/000001.jpg", "x/009999.jpg"])
    assert attributes.known.tolist() == [True, True, False]
    assert attributes.values.tolist() == [[True, False, False], [False, True, True], [False, False, False]]
    assert attributes.note.endswith("2 of these 3 images have attributes") and attributes.column("Male") == 2
    with pytest.raises(ValueError, match="unknown attribute 'Hat'; the attributes are Eyeglasses, Smiling, Male"):
        attributes.column("Hat")


def test_a_last_line_cut_short_is_left_out_and_said(tmp_path):
    path = _write(tmp_path / "a.txt", "2\nEyeglasses Smiling Male\n000001.jpg -1 1 1\n000002.jpg  1 -")
    table = read_attribute_file(path)
    assert list(table.rows) == ["000001.jpg"] and "its last line (4) is cut short and left out" in table.note


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            HEADER + "000001.jpg -1 1\n000002.jpg 1 1 1\n",
            r"line 3: expected an image name and 3 values of 1 or -1, found '000001.jpg -1 1'",
        ),
        (HEADER + "000001.jpg -1 2 1\n", r"line 3: expected an image name and 3 values"),
        (HEADER + "000001.jpg -1 1 1\n000001.jpg 1 1 1\n", r"line 4: a second row for 000001.jpg"),
        ("Eyeglasses Smiling\n000001.jpg 1 1\n", r"its first line should be the number of images"),
        ("3\nSmiling Smiling\n", r"line 2: repeated name\(s\) Smiling"),
    ],
)
def test_a_malformed_file_is_refused_by_line(tmp_path, text, problem):
    with pytest.raises(DataError, match=problem):
        read_attribute_file(_write(tmp_path / "list_attr_celeba.txt", text))


def test_a_file_that_is_not_text_or_not_a_file_is_refused(tmp_path):
    import os

    path = tmp_path / "list_attr_celeba.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(DataError, match="the attribute list .* is not UTF-8 text.*replace it with the official"):
        read_attribute_file(path)
    path.write_text("9" * 5000 + "\nEyeglasses\n")  # a count of 5,000 digits: not a count
    with pytest.raises(DataError, match="its first line should be the number of images"):
        read_attribute_file(path)
    path.unlink()
    os.mkfifo(path)  # a FIFO without a writer would block a plain read forever
    with pytest.raises(DataError, match="is not a regular file"):
        read_attribute_file(path)


def _jpeg(value):
    buf = io.BytesIO()
    Image.new("RGB", (40, 48), (value, value, value)).save(buf, format="JPEG")
    return buf.getvalue()


def test_celeba_declares_its_attributes_where_the_list_lies_beside_the_zip(tmp_path):
    with zipfile.ZipFile(tmp_path / "img_align_celeba.zip", "w") as z:
        for i in range(1, 7):
            z.writestr(f"img_align_celeba/{i:06d}.jpg", _jpeg(40 * i))
    (tmp_path / "list_eval_partition.txt").write_text("".join(f"{i:06d}.jpg 0\n" for i in range(1, 7)))
    dataset = open_dataset("celeba", str(tmp_path), "train", 16, 3)
    assert attributes_of(dataset) is None and dataset.attribute_file == tmp_path / "list_attr_celeba.txt"
    rows = "".join(f"{i:06d}.jpg {1 if i % 2 else -1} -1 1\n" for i in range(1, 6))  # none for 000006
    _write(tmp_path / "list_attr_celeba.txt", HEADER + rows)
    attributes = attributes_of(open_dataset("celeba", str(tmp_path), "train", 16, 3))
    assert attributes.known.tolist() == [True] * 5 + [False]
    assert attributes.values[:, 0].tolist() == [True, False, True, False, True, False]
    assert "5 of these 6 images have attributes" in attributes.note
    assert attributes.values.dtype == torch.bool


def test_an_attribute_file_of_a_hundred_thousand_columns_is_refused_before_its_rows(tmp_path):
    """100,001 columns made `train --data celeba` write a pipeline nothing could load; 10^6, 6 GB."""
    names = " ".join(f"a{i}" for i in range(100_001))
    path = _write(tmp_path / "list_attr_celeba.txt", f"1\n{names}\n000001.jpg " + " 1" * 100_001 + "\n")
    with pytest.raises(DataError, match="line 2: 100,001 names, more than the 256 stagegen takes; the official file names 40"):
        read_attribute_file(path)
