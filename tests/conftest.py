"""Shared fixtures: random collections, the shared data folder (tests that need it skip without it)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from lsr.vectors import Vocabulary

# The first `lsr` command that builds or searches on a machine warms every kernel (lsr.cli.warmup):
# tests run the CLI under their own timeouts, so they compile lazily; test_hardening tests the warm-up.
os.environ.setdefault("LSR_NO_WARMUP", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LSR_SHARED", REPO.parent / "shared"))
SCIFACT = REPO / "eval" / "data" / "scifact"


def random_collection(
    n_docs: int, n_terms: int, seed: int, density: float = 0.05, exact_weights: bool = True
) -> sp.csr_matrix:
    """A random document matrix. With ``exact_weights`` every weight is a multiple of 1/8 below 8,
    so float32 sums are exact and rankings (ties included) are unambiguous; otherwise weights are
    arbitrary floats."""
    rng = np.random.default_rng(seed)
    m = sp.random(n_docs, n_terms, density=density, random_state=rng, format="csr", dtype=np.float32)
    if exact_weights:
        m.data = (rng.integers(1, 64, m.nnz) / 8).astype(np.float32)
    else:
        m.data = rng.lognormal(0, 1, m.nnz).astype(np.float32)
    return m


def vocab_of(n_terms: int) -> Vocabulary:
    return Vocabulary([f"t{i}" for i in range(n_terms)])


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not here (tests that need ../shared skip on a machine without it)")
    return SHARED


def spy(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, note: Callable[..., Any] = lambda *a, **kw: 1
) -> list[Any]:
    """Wrap ``owner.name`` (a function or method) so that each call appends ``note(*args, **kw)``
    to the returned list before running the real one (undone with ``monkeypatch``)."""
    calls: list[Any] = []
    real = getattr(owner, name)

    def wrapper(*args: Any, **kw: Any) -> Any:
        calls.append(note(*args, **kw))
        return real(*args, **kw)

    monkeypatch.setattr(owner, name, wrapper)
    return calls
