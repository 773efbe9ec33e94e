"""Text from files shown on a terminal: control characters escaped, never interpreted."""

from __future__ import annotations

import unicodedata


def safe_text(text: str, keep: str = "\n\t") -> str:
    """``text`` with every control or format character (ESC, BEL, bidi overrides, ...) but those
    in ``keep`` written as an escape: a file's metadata cannot move the cursor, recolour or
    rewrite the terminal."""
    out = []
    for char in str(text):
        if char in keep or unicodedata.category(char) not in ("Cc", "Cf", "Co", "Cs"):
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii") if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return "".join(out)


def safe_name(name: object) -> str:
    """A file or entry name for a message: every control character escaped, newlines and tabs
    too (a name is one line; a crafted one could otherwise fake the lines that follow it)."""
    return safe_text(str(name), keep="")
