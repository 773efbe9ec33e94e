"""How long the `stagegen` command takes before it does anything: `--help`, a command's
`--help`, and an argument error (a mistyped flag), each a fresh process, the median of
``--reps`` runs. Target: under 1 s each on a 2-core machine. A command imports only what it
uses (torch only once a command needs it), so these never wait for torch.

    python benchmarks/startup.py [--reps 7] [--json benchmarks/results/startup.json]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

CALLS = {
    "stagegen --help": ["--help"],
    "stagegen train --help": ["train", "--help"],
    "stagegen train --bogus (an argument error)": ["train", "--bogus"],
    "stagegen sample (a missing argument)": ["sample"],
}


def seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "stagegen", *args], capture_output=True, check=False)
    return time.perf_counter() - start


def torch_import_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    rows = {name: statistics.median(seconds(call) for _ in range(args.reps)) for name, call in CALLS.items()}
    reference = statistics.median(torch_import_seconds() for _ in range(args.reps))
    print(f"| call | median of {args.reps} (s) |\n|---|---|")
    for name, value in rows.items():
        print(f"| `{name}` | {value:.2f} |")
    print(f"| (for scale: `python -c 'import torch'`) | {reference:.2f} |")
    if args.json:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _common import save_result

        save_result(
            args.json, {"benchmark": "startup", "reps": args.reps, "median_seconds": rows, "import_torch_seconds": reference}
        )


if __name__ == "__main__":
    main()
