"""Crash safety, short run: a writer killed with SIGKILL at random points of add, commit and merge
leaves an index that opens, equals the oracle of its committed generation and has lost no
acknowledged write (the full run: benchmarks/crash_living_index.py --trials 100)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "crash_living_index.py"


@pytest.mark.system  # ten writer processes killed mid-work (~15 s); CI runs it after the default tier
def test_sigkill_at_random_points_loses_nothing_acknowledged():
    spec = importlib.util.spec_from_file_location("crash_living_index", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rec = mod.run(trials=10, n_steps=60, max_delay=0.05, seed0=1000)
    assert rec["passed"] == 10
    assert rec["killed_mid_run"] >= 5  # the kills really landed while the writer worked
