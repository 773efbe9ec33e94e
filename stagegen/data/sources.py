"""Where image bytes come from: a folder tree or a zip archive, read-only."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

from .decode import IMAGE_SUFFIXES, MAX_FILE_BYTES, ImageTooLarge
from .registry import DataError


class ImageSource:
    """A list of image names and a way to read each one's bytes. Never writes anything."""

    names: list[str]

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError


class FolderSource(ImageSource):
    def __init__(self, root: Path, names: list[str] | None = None):
        self.root = Path(root)
        if names is None:
            names = sorted(
                str(p.relative_to(self.root)).replace(os.sep, "/")
                for p in self.root.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        self.names = names

    def read(self, name: str) -> bytes:
        with open(self.root / name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise ImageTooLarge(f"a {size:,}-byte file, more than the {MAX_FILE_BYTES:,} read per image")
            return f.read(MAX_FILE_BYTES + 1)

    def fingerprint(self) -> str:
        h = hashlib.sha256(str(self.root.resolve()).encode())
        for name in self.names:
            st = (self.root / name).stat()
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


class ZipSource(ImageSource):
    """Images inside a zip, read without extracting; each process opens its own handle."""

    def __init__(self, path: Path, prefix: str = "", names: list[str] | None = None):
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._pid: int | None = None
        try:
            with zipfile.ZipFile(self.path) as z:
                infos = {i.filename: i for i in z.infolist() if not i.is_dir()}
        except zipfile.BadZipFile:
            raise DataError(f"{self.path} is not a readable zip archive (corrupt or truncated)") from None
        self._crc = {n: i.CRC for n, i in infos.items()}
        if names is None:
            names = sorted(n for n in infos if n.startswith(prefix) and Path(n).suffix.lower() in IMAGE_SUFFIXES)
        self.names = names

    def _handle(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._pid = os.getpid()
        return self._zip

    def read(self, name: str) -> bytes:
        archive = self._handle()
        info = archive.getinfo(name)
        if info.file_size > MAX_FILE_BYTES:  # the directory's claim, checked before a byte is inflated
            raise ImageTooLarge(
                f"a zip entry of {info.file_size:,} bytes uncompressed, more than the {MAX_FILE_BYTES:,} read per image"
            )
        with archive.open(info) as entry:
            data = entry.read(MAX_FILE_BYTES + 1)  # and bounded again, should the directory lie
        if len(data) > MAX_FILE_BYTES:
            raise ImageTooLarge(f"a zip entry that inflates beyond the {MAX_FILE_BYTES:,} bytes read per image")
        return data

    def fingerprint(self) -> str:
        st = self.path.stat()
        h = hashlib.sha256(f"{self.path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        for name in self.names:
            h.update(f"{name}\0{self._crc.get(name)}\n".encode())
        return h.hexdigest()

    def __getstate__(self):  # DataLoader workers get a copy without the open handle
        state = dict(self.__dict__)
        state["_zip"] = None
        return state
