"""Text from files shown on a terminal: control characters escaped, never interpreted."""

from __future__ import annotations

import unicodedata


def safe_text(text: str) -> str:
    """``text`` with every control or format character (ESC, BEL, bidi overrides, ...) written as
    an escape: a file's metadata cannot move the cursor, recolour or rewrite the terminal."""
    out = []
    for char in str(text):
        if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf", "Co", "Cs"):
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii") if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return "".join(out)
