"""The ``lsr eval`` figures stay readable with 7 systems, three of them identical (issue 12): every
system's label and marker can be seen, none on top of another's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from lsr.eval import plots  # noqa: E402

LSR = {  # exact, maxscore and bmp give the same results and (here) the same latency
    "exact": (1.0, 2.0, 1.0),
    "maxscore": (1.0, 2.0, 1.0),
    "bmp": (1.0, 2.0, 1.0),
    "seismic": (0.4, 0.9, 0.93),
}


def _report() -> dict:
    systems = {
        name: {
            "kind": "lsr",
            "method": name,
            "efficiency": {"latency_ms": {"mean": p50, "p50": p50, "p99": p99}},
            "recall_vs_exact": rec,
        }
        for name, (p50, p99, rec) in LSR.items()
    }
    systems["bm25"] = {"kind": "baseline"}
    systems["fusion_rrf"] = {"kind": "fusion"}
    systems["fusion_minmax_sum"] = {"kind": "fusion"}
    return {"systems": systems, "settings": {"k": 1000}, "dataset": {"name": "tiny"}}


def _per_query() -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    same = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 50))}
    out = {name: dict(same) for name in ("exact", "maxscore", "bmp")}
    for name in ("seismic", "bm25", "fusion_rrf", "fusion_minmax_sum"):
        out[name] = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 50))}
    return out


@pytest.fixture
def figures(tmp_path, monkeypatch):
    """The two figures ``write_plots`` makes, kept open (``plt.close`` is a no-op here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real_close = plt.close
    real_close("all")
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    names = plots.write_plots(str(tmp_path), _report(), _per_query())
    assert names == ["recall_latency.png", "ndcg_per_query.png"]
    assert all((tmp_path / n).stat().st_size > 0 for n in names)
    figs = [plt.figure(n) for n in plt.get_fignums()]
    assert len(figs) == 2
    for f in figs:
        f.canvas.draw()
    yield figs
    real_close("all")


def _visible_texts(fig):
    from matplotlib.text import Text

    out = []
    for t in fig.findobj(Text):
        ax = t.axes
        if not t.get_visible() or not t.get_text().strip() or (ax is not None and not ax.get_visible()):
            continue
        out.append(t)
    return out


def _labels(fig, name: str) -> list:
    """Visible texts that name ``name`` (a tick label, an annotation, a title or a legend entry)."""
    return [t for t in _visible_texts(fig) if t.get_text() == name or t.get_text().startswith(name + " ")]


def _no_overlap(fig, names) -> None:
    r = fig.canvas.get_renderer()
    boxes = {}
    for n in names:
        labels = _labels(fig, n)
        assert labels, f"no label shows {n!r}"
        boxes[n] = [t.get_window_extent(r) for t in labels]
    for a, b in itertools.combinations(names, 2):
        for ba in boxes[a]:
            for bb in boxes[b]:
                assert not ba.overlaps(bb), f"the labels of {a!r} and {b!r} overlap"


def test_recall_latency_labels_and_markers_of_identical_systems_do_not_overlap(figures):
    fig = figures[0]
    _no_overlap(fig, list(LSR))
    # each system's marker at its own place, in every panel that shows markers
    panels = 0
    for ax in fig.axes:
        pts = set()
        for line in ax.get_lines():
            if line.get_marker() not in (None, "None", "") and len(line.get_xdata()) == 1:
                x, y = ax.transData.transform((line.get_xdata()[0], line.get_ydata()[0]))
                pts.add((round(x), round(y)))
        for coll in ax.collections:
            for x, y in ax.transData.transform(coll.get_offsets()):
                pts.add((round(x), round(y)))
        if pts:
            panels += 1
            assert len(pts) == len(LSR), f"{len(LSR)} systems, {len(pts)} distinct markers"
    assert panels >= 1


def test_ndcg_per_query_shows_every_system_filled_in_its_own_panel(figures):
    from matplotlib.patches import Rectangle

    fig = figures[1]
    per_query = _per_query()
    _no_overlap(fig, list(per_query))
    for name, vals in per_query.items():
        axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_title().startswith(name + " ")]
        assert len(axes) == 1, f"{name!r} has no panel of its own"
        bars = [p for p in axes[0].patches if isinstance(p, Rectangle) and p.get_fill()]
        assert bars and all(p.get_facecolor()[3] > 0 for p in bars), f"{name!r} is not drawn filled"
        assert sum(p.get_height() for p in bars) == len(vals)  # all of this system's queries, no other's


@pytest.mark.system  # compiles ranx's fuse/evaluate/compare kernels cold: 43 s of the default tier
def test_ranx_type_safety_warnings_are_not_shown(monkeypatch, tmp_path):
    """ranx's kernels warn ``NumbaTypeSafetyWarning`` when numba compiles them (a cold cache): every
    ranx call of ``lsr eval`` (fusion, evaluation, comparison) silences that warning, and only it."""
    import warnings

    import ranx
    from numba.core.errors import NumbaTypeSafetyWarning

    from lsr.eval.bm25 import fuse_runs
    from lsr.eval.compare import compare_dirs
    from lsr.eval.metrics import evaluate_run
    from lsr.eval.runs import write_qrels, write_run

    def noisy(fn):
        def wrapped(*a, **k):
            warnings.warn("unsafe cast from uint64 to int64", NumbaTypeSafetyWarning, stacklevel=1)
            warnings.warn("another warning", UserWarning, stacklevel=1)
            return fn(*a, **k)

        return wrapped

    for name in ("fuse", "evaluate", "compare"):
        monkeypatch.setattr(ranx, name, noisy(getattr(ranx, name)))
    a = {"q": [("d1", 2.0), ("d2", 1.0)], "r": [("d3", 1.0)]}
    for d in ("one", "two"):
        (tmp_path / d / "runs").mkdir(parents=True)
        write_qrels(str(tmp_path / d / "qrels.tsv"), {"q": {"d2": 1}, "r": {"d3": 2}})
        write_run(str(tmp_path / d / "runs" / "exact.trec"), a, "t")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fuse_runs([a, {"q": [("d2", 3.0)], "r": [("d1", 1.0)]}], "rrf")
        evaluate_run(a, {"q": {"d2": 1}})
        compare_dirs(str(tmp_path / "one"), str(tmp_path / "two"), metrics=("ndcg@10",))
    assert [w.category for w in seen] == [UserWarning] * 3


@pytest.mark.system
def test_ranx_compiles_without_numba_type_safety_warnings(tmp_path):
    """``lsr eval`` printed ranx's "NumbaTypeSafetyWarning: unsafe cast from uint64 to int64" (its RRF
    kernel) whenever numba compiled it: a fresh numba cache here, so it compiles."""
    import os
    import subprocess
    import sys

    pytest.importorskip("ranx")
    code = (
        "from lsr.eval.bm25 import fuse_runs\n"
        "from lsr.eval.metrics import evaluate_run\n"
        "a = {'q': [('d1', 2.0), ('d2', 1.0)]}; b = {'q': [('d2', 3.0), ('d3', 1.0)]}\n"
        "for m, n in (('rrf', None), ('sum', 'min-max')): fuse_runs([a, b], m, n)\n"
        "print(evaluate_run(a, {'q': {'d2': 1}})[0]['ndcg@10'])\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.split()[-1]) == pytest.approx(0.6309, abs=1e-4)
    assert "NumbaTypeSafetyWarning" not in r.stderr, r.stderr[-500:]
