"""CIFF export and import (lsr.ciff): the file layout against a hand-built oracle, ciff -> lsr -> ciff identical
postings, bad files as one-line errors, and BMP (the ``bmp`` package, bench extra) searching our CIFF."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("google.protobuf")

from lsr.ciff import _read_delimited, messages, read_ciff  # noqa: E402
from lsr.cli.main import main  # noqa: E402
from lsr.errors import LsrError  # noqa: E402
from lsr.index import build_index, open_index  # noqa: E402

from conftest import random_collection, vocab_of  # noqa: E402


def _index(tmp_path, quantization="uint8", methods="all", n_docs=300, n_terms=80, seed=0, quantizer="global"):
    m = random_collection(n_docs, n_terms, seed, density=0.08, exact_weights=False)
    ids = [f"doc-{i}" for i in range(n_docs)]
    path = build_index(
        m,
        tmp_path / f"idx-{quantization}-{methods}-{quantizer}",
        vocab=vocab_of(n_terms),
        ids=ids,
        quantization=quantization,
        methods=methods,
        quantizer=quantizer,  # global: one step, so CIFF holds the stored impacts (tests below)
    )
    return m, ids, path


def _raw_messages(path):
    """Every message of a CIFF file, parsed with the plain varint framing (the oracle for the layout)."""
    msgs = messages()
    with open(path, "rb") as f:
        h = _read_delimited(f, msgs["Header"], "header", path)
        pls = [_read_delimited(f, msgs["PostingsList"], "pl", path) for _ in range(h.num_postings_lists)]
        docs = [_read_delimited(f, msgs["DocRecord"], "doc", path) for _ in range(h.num_docs)]
        assert f.read() == b""
    return h, pls, docs


def test_export_layout_matches_the_matrix(tmp_path) -> None:
    """Reordered uint8 index -> CIFF: doc ids in build order, d-gaps, tf = the stored impacts."""
    m, ids, path = _index(tmp_path)
    idx = open_index(path)
    assert len(idx.doc_order)  # bmp/seismic reordered the documents: export must undo it
    out = tmp_path / "a.ciff"
    assert main(["export-ciff", path, str(out)]) == 0
    h, pls, docs = _raw_messages(out)
    assert (h.version, h.num_docs, h.num_postings_lists) == (1, m.shape[0], len(pls))
    assert [d.collection_docid for d in docs] == ids and [d.docid for d in docs] == list(range(m.shape[0]))
    csc = m.tocsc()
    scale = float(idx.scale)
    seen = 0
    for pl in pls:
        t = int(pl.term[1:])
        col = csc[:, t]
        want_docs = col.indices[np.argsort(col.indices)]
        want_tf = np.clip(np.rint(col.toarray().ravel()[want_docs] / scale), 1, 255)
        got_docs = np.cumsum([p.docid for p in pl.postings])
        np.testing.assert_array_equal(got_docs, want_docs)
        np.testing.assert_array_equal([p.tf for p in pl.postings], want_tf)
        assert pl.df == len(want_docs) and pl.cf == int(want_tf.sum())
        seen += 1
    assert seen == int((np.diff(csc.indptr) > 0).sum())
    lengths = np.zeros(m.shape[0])
    for pl in pls:
        np.add.at(lengths, np.cumsum([p.docid for p in pl.postings]), [p.tf for p in pl.postings])
    np.testing.assert_array_equal([d.doclength for d in docs], lengths)


def test_roundtrip_ciff_lsr_ciff_identical(tmp_path) -> None:
    _, _, path = _index(tmp_path, quantization="float32", methods="exact")
    a = tmp_path / "a.ciff"
    main(["export-ciff", path, str(a)])  # float32 -> 8-bit tfs
    assert main(["index", "--input", str(a), "--output", str(tmp_path / "back"), "--methods", "exact"]) == 0
    b = tmp_path / "b.ciff"
    main(["export-ciff", str(tmp_path / "back"), str(b)])
    ha, pa, da = _raw_messages(a)
    hb, pb, db = _raw_messages(b)
    assert [(p.term, p.df, p.cf, [(x.docid, x.tf) for x in p.postings]) for p in pa] == [
        (p.term, p.df, p.cf, [(x.docid, x.tf) for x in p.postings]) for p in pb
    ]
    assert [(d.docid, d.collection_docid, d.doclength) for d in da] == [
        (d.docid, d.collection_docid, d.doclength) for d in db
    ]
    assert (ha.num_docs, ha.num_postings_lists, ha.total_terms_in_collection) == (
        hb.num_docs,
        hb.num_postings_lists,
        hb.total_terms_in_collection,
    )
    # the imported index scores with the tfs: exact search equals a brute-force dot product
    c = read_ciff(a)
    idx = open_index(tmp_path / "back")
    q = {"t3": 1.5, "t7": 2.0, "t11": 0.5}
    dense = c.to_scipy().toarray()
    scores = sum(w * dense[:, c.terms.index(t)] for t, w in q.items() if t in c.terms)
    res = idx.search([q], k=5)[0]
    np.testing.assert_allclose(res.scores, np.sort(scores)[::-1][:5], rtol=1e-6)


def test_truncated_and_garbage_ciff_are_one_line_errors(tmp_path, capsys) -> None:
    _, _, path = _index(tmp_path, methods="exact")
    a = tmp_path / "a.ciff"
    main(["export-ciff", path, str(a)])
    capsys.readouterr()
    data = a.read_bytes()
    (tmp_path / "cut.ciff").write_bytes(data[: len(data) // 2])
    with pytest.raises(LsrError, match="truncated CIFF"):
        read_ciff(tmp_path / "cut.ciff")
    assert main(["index", "--input", str(tmp_path / "cut.ciff"), "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().split("\r")[-1]  # after the progress bar's erasure
    assert err.startswith("lsr: error: ") and "truncated CIFF" in err and "\n" not in err
    (tmp_path / "junk.ciff").write_bytes(b"\x05\xff\xff\xff\xff\xff")
    with pytest.raises(LsrError, match="not a CIFF file|truncated"):
        read_ciff(tmp_path / "junk.ciff")
    assert not os.path.exists(tmp_path / "x")


def test_bmp_searches_our_ciff_like_exact(tmp_path) -> None:
    bmp = pytest.importorskip("bmp")
    m, ids, path = _index(tmp_path, quantization="uint8", methods="exact", n_docs=500, n_terms=120, seed=3)
    ciff = tmp_path / "a.ciff"
    main(["export-ciff", path, str(ciff)])
    bmp.ciff2bmp(ciff_file=str(ciff), output=str(tmp_path / "index.bmp"), bsize=32, compress_range=False)
    searcher = bmp.Searcher(str(tmp_path / "index.bmp"))
    idx = open_index(path)
    rng = np.random.default_rng(7)
    for _ in range(20):
        # equal query weights: bmp scales query weights to its own integer range, so only then are its
        # scores a constant multiple of lsr's (a single factor, checked below)
        q = {f"t{t}": 1 for t in rng.choice(120, 5, replace=False)}
        want = idx.search([{k: 1.0 for k in q}], k=10, method="exact")[0]
        docnos, scores = searcher.search(q, k=10, alpha=1.0, beta=1.0)
        got = np.sort(np.asarray(scores, np.float64))[::-1]
        ratio = got[0] / want.scores[0]
        # documents tied with the 10th score may differ (bmp skips blocks whose bound only equals the
        # threshold); every document strictly above it must be in both top-10s with the same score
        above = np.asarray(want.scores) > want.scores[-1] * (1 + 1e-6)
        np.testing.assert_allclose(got[: above.sum()], np.asarray(want.scores)[above] * ratio, rtol=1e-5)
        assert {d for d, a in zip(want.ids, above, strict=True) if a} <= set(docnos)
        assert len(docnos) == len(want.ids)


def test_export_of_a_per_term_index_quantizes_with_one_step(tmp_path) -> None:
    """A per-term uint8 index (the default quantizer): CIFF has one scale, so each posting's tf is its
    dequantized weight (impact x scale x term_scale[t]) quantized again with one step (own formula)."""
    m, ids, path = _index(tmp_path, methods="exact", quantizer="term")
    idx = open_index(path)
    assert idx.term_scale is not None
    out = tmp_path / "t.ciff"
    assert main(["export-ciff", path, str(out)]) == 0
    c = read_ciff(out)
    offsets = np.asarray(idx.offsets)
    deq = {}  # (term, build-order doc) -> dequantized weight
    for t in range(idx.n_terms):
        for p in range(int(offsets[t]), int(offsets[t + 1])):
            w = float(idx.postings_impacts[p]) * float(idx.scale) * float(idx.term_scale[t])
            deq[(t, int(idx.postings_docs[p]))] = w
    step = max(deq.values()) / 255
    for i, term in enumerate(c.terms):
        t = int(term[1:])
        a, b = c.offsets[i], c.offsets[i + 1]
        for d, tf in zip(c.docs[a:b], c.tfs[a:b], strict=True):
            x = deq[(t, int(d))] / step  # round to nearest (a product order may move a .5 tie)
            assert 1 <= tf <= 255 and abs(tf - min(255.0, max(1.0, x))) <= 0.5 + 1e-9
    assert float(c.description.rsplit("impact = tf x ", 1)[1]) == pytest.approx(step, rel=1e-6)
