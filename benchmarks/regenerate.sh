#!/usr/bin/env bash
# Every figure of docs/results.md, docs/performance.md and the README, measured again on this
# machine (one command at a time, nothing else running: the timings are only worth something on
# an idle machine), then the pages rendered from the new files. Each command writes its own file
# under benchmarks/results/ as it finishes, so the files of a run cut short are still whole.
# On the project's 2-core CPU, `--quick` (everything but CelebA) took 83 minutes on 2026-12-05:
# the digits quality run 22, the performance scripts 11, MNIST 50. CelebA adds about 2 h 20 min
# (its models train for 15 minutes each: five on the first seed, the two headline ones on two more).
set -euo pipefail
cd "$(dirname "$0")/.."
R=benchmarks/results
python benchmarks/startup.py --json $R/startup.json
python benchmarks/default_run.py --json $R/default_run.json
python benchmarks/train_speed.py --json $R/train_speed.json                 # the bench extra brings pythae
python benchmarks/profile_step.py --json $R/profile_step.json
python benchmarks/sample_speed.py --json $R/sample_speed.json
python benchmarks/data_speed.py --json $R/data_speed.json                    # needs ../shared/data/celeba
python benchmarks/train_speed_ab.py --old 8333488 --rounds 3 --json $R/train_speed_ab.json
python benchmarks/quality.py --datasets digits
python benchmarks/quality.py --datasets mnist --models vae,resvae,msvae,cal-vae,sharp
if [ "${1:-}" != "--quick" ]; then
  python benchmarks/quality.py --datasets celeba
fi
python benchmarks/pages.py --render
python benchmarks/pages.py --check
