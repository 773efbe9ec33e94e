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


#: a class or attribute name longer than this was not written by a person (CelebA's longest
#: attribute is 19 characters): it would widen every grid margin and message that shows it
MAX_NAME_CHARS = 100
#: labels a prior per label is fitted for, or a trunk is conditioned on: each label is its own
#: fit (about 0.2 s on the CPU), and 1,000 is ImageNet's count
MAX_LABELS = 1000
#: attributes with a latent direction each (CelebA has 40)
MAX_ATTRIBUTES = 256


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a label or attribute name (None when it can): a name is a short,
    non-empty line of printable text, shown in grids, tables, messages and file names."""
    if not isinstance(name, str) or not name:
        return "a name must be a non-empty string"
    if len(name) > MAX_NAME_CHARS:
        return f"{safe_name(name[:40])}... is {len(name):,} characters; a name has at most {MAX_NAME_CHARS}"
    if safe_name(name) != name:
        return f"{safe_name(name)} holds a control or format character"
    return None


def check_names(names, what: str, most: int) -> list[str]:
    """``names`` when every one is a usable name, distinct, at most ``most`` of them; else a
    ValueError saying which and why (``what`` says whose names they are)."""
    names = list(names)
    if len(names) > most:
        raise ValueError(f"{what}: {len(names):,} names, more than the {most:,} stagegen takes")
    for name in names:
        problem = name_problem(name)
        if problem is not None:
            raise ValueError(f"{what}: {problem}")
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})[:5]
        raise ValueError(f"{what}: repeated name(s) {', '.join(repeated)}")
    return names


def shown_names(names, most: int = 20) -> str:
    """The first ``most`` names, comma-separated, then how many there are in all (a message
    lists a few, never ten thousand)."""
    names = [safe_name(n) for n in names]
    return ", ".join(names[:most]) + (f", ... ({len(names):,} in all)" if len(names) > most else "")
