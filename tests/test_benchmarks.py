"""The benchmark scripts still run (tiny settings; nothing here is timed or compared)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script, *args):
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_train_speed_runs_and_prints_its_table():
    out = _run("train_speed.py", "--presets", "msvae-digits", "--batch", "8", "--steps", "2", "--reps", "1", "--warmup", "1")
    assert "| msvae-digits | plain |" in out and "| msvae-digits | stagegen |" in out and "conv peak" in out


@pytest.mark.slow
def test_sample_speed_runs():
    out = _run("sample_speed.py", "--presets", "msvae-digits", "--batches", "1,4", "--reps", "1")
    assert "| msvae-digits |" in out
