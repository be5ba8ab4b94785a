"""Concurrency, short run: 8 searching clients and 1 writer against `lsr serve` with LSR_WRITABLE=1:
zero errors, every result equal to the oracle of some committed version (the full 60 s run:
benchmarks/soak_living_index.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "soak_living_index.py"


@pytest.mark.slow
def test_searches_during_writes_are_consistent():
    spec = importlib.util.spec_from_file_location("soak_living_index", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rec = mod.run(seconds=10, clients=8)
    assert rec["errors"] == 0, rec["error_examples"]
    assert rec["inconsistent"] == 0, rec["inconsistent_examples"]
    assert rec["searches"] > 50 and rec["writes"] > 5
    # BMP ran over several segments with deleted documents (its live-document bounds) at some point
    assert rec["max_bmp_segments_with_deletes"] >= 2
