"""The tables of docs/performance.md, written from the benchmarks' JSON files (benchmarks/pages.py
calls these by name from the page's markers)."""

from __future__ import annotations

from pages import load, spread


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def train_speed(name: str = "train_speed") -> str:
    data = load(name)
    rows = [
        [
            r["model"],
            r["trainer"],
            f"{r['images_per_second']:.1f}",
            f"{r['vs_plain']:.2f}x",
            f"{r['gflop_per_image']:.3f}",
            f"{r['achieved_gflops']:.1f}",
            f"{r['fraction_of_conv_peak']:.0%}",
            f"{r['peak_mb']:.0f}",
        ]
        for r in data["rows"]
    ]
    head = ["model", "trainer", "images/s", "vs plain loop", "GFLOP/image", "achieved GFLOP/s", "of conv peak", "peak memory MB"]
    return _table(head, rows)


def profile_groups(name: str = "profile_step") -> str:
    data = load(name)
    return _table(["group", "share of step time"], [[g, f"{share:.0%}"] for g, share in data["group_share"].items()])


def sample_speed(name: str = "sample_speed") -> str:
    data = load(name)
    rows = [[r["model"], f"{r['load_seconds']:.3f}", str(r["batch"]), f"{r['images_per_second']:.1f}"] for r in data["rows"]]
    return _table(["model", "load s", "batch", "images/s"], rows)


def data_speed(name: str = "data_speed") -> str:
    data = load(name)
    rows = [
        [str(r["size"]), str(r["workers"]), f"{r['cold_images_per_second']:.0f}", f"{r['warm_images_per_second']:.0f}"]
        for r in data["rows"]
    ]
    return _table(["size", "workers", "cold: decode into cache, images/s", "warm: batches from cache, images/s"], rows)


def train_speed_ab(name: str = "train_speed_ab") -> str:
    data = load(name)
    rows = [
        [
            r["preset"],
            str(r["batch"]),
            " / ".join(f"{x:.1f}" for x in r["old"]),
            " / ".join(f"{x:.1f}" for x in r["new"]),
            f"{r['old_median']:.1f}",
            f"{r['new_median']:.1f}",
            f"{r['ratio']:.2f}",
        ]
        for r in data["rows"]
    ]
    old = data["old"]
    head = [
        "preset",
        "batch",
        f"{old} images/s, per round",
        "this tree, per round",
        f"{old} median",
        "this tree median",
        "new / old",
    ]
    return _table(head, rows)


def startup(name: str = "startup") -> str:
    data = load(name)
    rows = [[f"`{call}`", f"{seconds:.2f}"] for call, seconds in data["median_seconds"].items()]
    rows.append(["(for scale: `python -c 'import torch'`)", f"{data['import_torch_seconds']:.2f}"])
    return _table(["call", f"median of {data['reps']} (s)"], rows)


def _pm(values: list[float], percent: bool = True) -> str:
    scale, unit = (100, "%") if percent else (1, "")
    mean, sd = (x * scale for x in spread(values))
    return f"{mean:.1f}{unit}" if len(values) == 1 else f"{mean:.1f} ± {sd:.1f}{unit}"


CONDITIONAL_ROWS = {
    "ex-post": "unconditional trunk; z from the label's own mixture, fitted after training",
    "cvae": "CVAE; z from the unconditional mixture, decoded with the label",
    "cvae+ex-post": "CVAE; z from the label's own mixture, decoded with the label",
}


def conditional(name: str = "conditional-digits") -> str:
    """Per variant, over the seeds: how many of a label's samples the classifier assigns to that
    label (final stage; the coarse stage in brackets), the worst digit, and the unconditional
    samples recognised as any digit."""
    data = load(name)
    rows = []
    for variant, runs in data["runs"].items():
        per_seed = list(runs.values())

        def column(key, stage, per_seed=per_seed):
            return [run["stages"][stage][key] for run in per_seed]

        rows.append(
            [
                CONDITIONAL_ROWS.get(variant, variant),
                str(len(per_seed)),
                f"{_pm(column('label_recognised', -1))} ({_pm(column('label_recognised', 0))})",
                _pm(column("label_recognised_worst", -1)),
                _pm(column("sample_confident", -1)),
            ]
        )
    head = [
        "samples of a label",
        "seeds",
        "recognised as that label, final (coarse)",
        "worst digit",
        "unconditional samples recognised",
    ]
    return _table(head, rows)
