"""Splits of image collections without an official one: decided per file name, by a hash."""

from __future__ import annotations

import hashlib


def split_of(name: str, val_fraction: float, test_fraction: float, seed: int) -> str:
    """A name's split from a hash of it: deterministic, and stable when other files come and go."""
    u = int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"
