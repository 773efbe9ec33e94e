"""Splits of image collections without an official one: decided per item name, by a hash.

The one split scheme of stagegen (folders and zips by file name, CelebA without its partition
file, the embedded digits by index): deterministic under a seed, and an item's split never
changes when others come and go. Shares are met on average, not exactly (the digits: 1,500
train, 104 val, 193 test of 1,797 with seed 0)."""

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
