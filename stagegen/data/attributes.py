"""Binary attributes of images (CelebA's 40: Eyeglasses, Smiling, ...), read from the official
``list_attr_celeba.txt``: a count line, a line of attribute names, then one row per image of
its file name and a value of 1 or -1 per attribute.

A partial file (fewer rows than its count line says, as a copy of the first rows is) is read for
what it holds, and says so; a row that cannot be read is an error naming its line, except a last
line cut short, which is left out and said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..files import read_text_file
from ..text import MAX_ATTRIBUTES, check_names, safe_name, shown_names
from .registry import DataError

__all__ = ["ATTRIBUTE_FILE", "Attributes", "attributes_for", "attributes_of", "read_attribute_file"]

ATTRIBUTE_FILE = "list_attr_celeba.txt"
#: the official file is 26.7 MB
MAX_ATTRIBUTE_FILE_BYTES = 128 * 2**20


@dataclass(frozen=True)
class Attributes:
    """``values[i, a]``: image ``i`` has attribute ``names[a]``; meaningful where ``known[i]``
    (the file has a row for image ``i``)."""

    names: tuple[str, ...]
    values: torch.Tensor  # N x A, bool
    known: torch.Tensor  # N, bool
    note: str = ""  # what the file lacked (a partial file), to say where the attributes are used

    def __len__(self) -> int:
        return len(self.known)

    def column(self, name: str) -> int:
        """The index of attribute ``name``; an unknown one is an error listing them all."""
        if name not in self.names:
            raise ValueError(f"unknown attribute {safe_name(repr(name)[:60])}; the attributes are {shown_names(self.names)}")
        return self.names.index(name)


@dataclass(frozen=True)
class AttributeFile:
    names: tuple[str, ...]
    rows: dict[str, list[bool]]  # file name -> a value per attribute
    declared: int  # the count line
    note: str


def read_attribute_file(path: str | Path) -> AttributeFile:
    """Parse an attribute file; :class:`DataError` naming the line for one that is malformed."""
    path = Path(path)
    try:  # a regular file of bounded size only: a FIFO or /dev/zero in its place must not hang the run
        text = read_text_file(path, "the attribute list", MAX_ATTRIBUTE_FILE_BYTES)
    except ValueError as exc:
        raise DataError(f"{exc}; replace it with the official list_attr_celeba.txt (26.7 MB) or remove it") from None
    lines = text.splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit() or len(lines[0].strip()) > 12:
        raise DataError(
            f"{path} is not an attribute list: its first line should be the number of images and its second the "
            "attribute names (as list_attr_celeba.txt); replace it with the official file"
        )
    declared = int(lines[0])
    names = tuple(lines[1].split())
    if not names:
        raise DataError(f"{path} line 2: the attribute names are missing; replace it with the official file")
    try:  # bounded before a row is read: 10^6 columns would take gigabytes and make a file nothing can load
        check_names(names, f"{path} line 2", MAX_ATTRIBUTES)
    except ValueError as exc:
        raise DataError(f"{exc}; the official file names 40 attributes: replace it with that one") from None
    rows: dict[str, list[bool]] = {}
    notes = []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            if number == len(lines) and not text.endswith("\n"):  # a copy cut off mid-row
                notes.append(f"its last line ({number}) is cut short and left out")
                break
            raise DataError(
                f"{path} line {number}: expected an image name and {len(names)} values of 1 or -1, found "
                f"{line[:80]!r}; replace the file with the official one"
            )
        if parts[0] in rows:
            raise DataError(f"{path} line {number}: a second row for {parts[0]}; the file was altered")
        rows[parts[0]] = [v == "1" for v in parts[1:]]
    if len(rows) < declared:
        notes.insert(0, f"its first line says {declared:,} images, it holds rows for {len(rows):,} (a partial file)")
    return AttributeFile(names, rows, declared, "; ".join(notes))


def attributes_for(path: str | Path, image_names: Sequence[str]) -> Attributes:
    """The attributes of ``image_names`` (file names; a path's last part is matched) from the
    file at ``path``; images without a row are marked unknown, and the note says how many."""
    table = read_attribute_file(path)
    values = torch.zeros(len(image_names), len(table.names), dtype=torch.bool)
    known = torch.zeros(len(image_names), dtype=torch.bool)
    for i, name in enumerate(image_names):
        row = table.rows.get(name.rsplit("/", 1)[-1])
        if row is not None:
            values[i] = torch.tensor(row)
            known[i] = True
    note = table.note
    if int(known.sum()) < len(image_names):
        note = (note + "; " if note else "") + f"{int(known.sum()):,} of these {len(image_names):,} images have attributes"
    return Attributes(table.names, values, known, f"{Path(path).name}: {note}" if note else "")


def attributes_of(dataset) -> Attributes | None:
    """The dataset's attributes, when it declares them for its images."""
    attributes = getattr(dataset, "attributes", None)
    if isinstance(attributes, Attributes) and len(attributes) == len(dataset):
        return attributes
    return None
