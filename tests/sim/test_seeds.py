"""The randomized simulation as CI runs it: thousands of seeds across cluster sizes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from . import __main__ as cli
from .checker import InvariantViolation
from .runner import Run

ROOT = Path(__file__).resolve().parents[2]
SEEDS = int(os.environ.get("PETCD_SIM_SEEDS", "2000"))


def test_thousands_of_seeds_keep_every_invariant():
    proc = subprocess.run(
        [sys.executable, "-m", "tests.sim", "--seeds", str(SEEDS), "--jobs", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"sim: seeds={SEEDS} failures=0 steps=\d+", last), proc.stdout[-3000:]
    assert proc.returncode == 0
    assert int(last.rsplit("=", 1)[1]) > SEEDS * 300  # every seed ran its whole course


def test_a_failing_seed_prints_the_command_that_replays_it(monkeypatch, capsys):
    def broken_step(self, chaos):
        raise InvariantViolation("planted")

    monkeypatch.setattr(Run, "step", broken_step)
    assert cli.main(["--seeds", "2", "--first-seed", "40"]) == 1
    out = capsys.readouterr().out
    assert "python -m tests.sim --seed 40 --members 1" in out
    assert "python -m tests.sim --seed 41 --members 3" in out
    assert out.strip().splitlines()[-1] == "sim: seeds=2 failures=2 steps=0"


def test_a_seed_replays_exactly():
    from .runner import run_seed
    assert run_seed(1234) == run_seed(1234)
