"""The published figures, rendered from the benchmarks' committed output.

Every measured figure on docs/results.md, docs/performance.md and the README sits between two
HTML comments that say where it comes from (invisible once the page is rendered):

    <!--fig quality-digits summary.sharp+gmm.1.sample_realism pm.2f-->0.62 ± 0.03<!--/fig-->

is the value at that path of benchmarks/results/quality-digits.json, in that format (``A/B``: the
ratio of two values of the file); and every
generated table sits between

    <!--table quality:final_table digits-->
    | model | ... |
    <!--/table-->

the markdown a benchmark script's function writes from its files (here ``final_table("digits")``
of benchmarks/quality.py). ``--render`` rewrites what sits between the comments from the files;
``--check`` renders in memory and fails where the page differs, and where a figure (a decimal, a
percentage, a duration, a rate) stands outside the comments, in prose or a table, with no file
behind it. Code spans and code blocks are commands, not figures, and are left alone.

    python benchmarks/pages.py --check      # no training: reads the JSON files only
    python benchmarks/pages.py --render     # after a benchmark wrote new files

Formats: a Python format spec (``.2f``, ``.1%``, ``,.0f``); ``pm`` before one prints a value
measured over seeds as ``mean ± standard deviation`` (a single run as its value); ``mean``
before one prints the mean alone; ``s`` prints text; ``dur`` prints seconds as ``2 min 57 s``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import statistics
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGES = ("docs/results.md", "docs/performance.md", "README.md")

FIG = re.compile(r"<!--fig (?P<file>[^\s<>]+) (?P<path>[^\s<>]+) (?P<format>[^\s<>]+?)-->(?P<text>.*?)<!--/fig-->", re.S)
TABLE = re.compile(r"<!--table (?P<function>[\w.]+:\w+)(?P<args>[^>]*)-->\n(?P<text>.*?)<!--/table-->", re.S)
#: what counts as a measured figure when it stands outside the markers
UNMARKED = re.compile(
    r"(?<![\w.\-/])(\d[\d,]*\.\d+|\d[\d,.]*\s?%|\d[\d,.]*\s?(?:ms|s|min|minutes|seconds|images/s|MB|GB|GFLOP/s|TFLOP/s)\b)"
)
IGNORED = re.compile(r"```.*?```|`[^`\n]*(?:\n[^`\n]*)?`|<!--.*?-->|\]\([^)]*\)", re.S)


class PageError(ValueError):
    """A marker names a file, a path or a format that does not give a figure."""


@cache
def load(name: str):
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        raise PageError(f"{shown} does not exist: run the benchmark that writes it (benchmarks/regenerate.sh names each)")
    return json.loads(path.read_text())


def lookup(data, path: str):
    """The value at a dotted path: keys of objects, indices (negative too) of lists, or of an
    object's values in order (for keys that hold spaces)."""
    value = data
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, (list, dict)) and re.fullmatch(r"-?\d+", part) and -len(value) <= int(part) < len(value):
            value = value[int(part)] if isinstance(value, list) else list(value.values())[int(part)]
        else:
            raise PageError(f"no {part!r} at {path!r}")
    return value


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def format_figure(value, spec: str) -> str:
    if spec == "s":
        return str(value)
    if spec == "dur":  # seconds as a person says them: 45 s, 2 min 57 s
        minutes, seconds = divmod(round(float(value)), 60)
        return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    if spec.startswith("pm") or spec.startswith("mean"):
        values = value["values"] if isinstance(value, dict) else value if isinstance(value, list) else [value]
        inner = spec[2:] if spec.startswith("pm") else spec[4:]
        mean, sd = spread(values)
        if spec.startswith("mean") or len(values) == 1:
            return format(mean, inner)
        return f"{format(mean, inner)} ± {format(sd, inner)}"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, spec)


def _figure(match: re.Match) -> str:
    data = load(match["file"])
    if "/" in match["path"]:  # a ratio of two values of the file
        numerator, denominator = (lookup(data, part) for part in match["path"].split("/", 1))
        value = numerator / denominator
    else:
        value = lookup(data, match["path"])
    text = format_figure(value, match["format"])
    return f"<!--fig {match['file']} {match['path']} {match['format']}-->{text}<!--/fig-->"


def _table(match: re.Match) -> str:
    module, function = match["function"].split(":")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        writer = getattr(importlib.import_module(module), function)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    text = writer(*match["args"].split()).rstrip("\n") + "\n"
    return f"<!--table {match['function']}{match['args']}-->\n{text}<!--/table-->"


def render(text: str) -> str:
    """The page with every marked figure and table written again from the files."""
    return FIG.sub(_figure, TABLE.sub(_table, text))


def unmarked_figures(text: str) -> list[tuple[int, str]]:
    """(line, figure) of every figure outside the markers, code and link targets."""

    def blank(match: re.Match) -> str:  # the same length and lines, nothing to find
        return re.sub(r"[^\n]", " ", match.group(0))

    blanked = IGNORED.sub(blank, FIG.sub(blank, TABLE.sub(blank, text)))
    return [(blanked.count("\n", 0, m.start()) + 1, m.group(1)) for m in UNMARKED.finditer(blanked)]


def check(pages=PAGES) -> list[str]:
    """What is wrong with the pages: lines that differ from their rendering, figures without a file."""
    problems = []
    for page in pages:
        path = ROOT / page
        text = path.read_text()
        try:
            rendered = render(text)
        except PageError as error:
            problems.append(f"{page}: {error}")
            continue
        for number, (said, written) in enumerate(zip(text.splitlines(), rendered.splitlines()), 1):
            if said != written:
                problems.append(f"{page}:{number}: the page says\n    {said}\n  the files say\n    {written}")
        if text.count("\n") != rendered.count("\n"):
            problems.append(f"{page}: {text.count(chr(10))} lines, the rendering {rendered.count(chr(10))}")
        problems += [f"{page}:{n}: {figure!r} has no file behind it (mark it)" for n, figure in unmarked_figures(text)]
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--render", action="store_true", help="rewrite the pages' figures and tables from the files")
    what.add_argument("--check", action="store_true", help="fail where a page and the files disagree")
    p.add_argument("pages", nargs="*", default=list(PAGES), help=f"pages relative to the repository (default: {' '.join(PAGES)})")
    args = p.parse_args(argv)
    if args.render:
        for page in args.pages:
            path = ROOT / page
            path.write_text(render(path.read_text()))
            print(f"rendered {page}")
        return 0
    problems = check(args.pages)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s); `python benchmarks/pages.py --render` rewrites marked figures", file=sys.stderr)
        return 1
    print(f"{len(args.pages)} page(s) agree with benchmarks/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
