"""SpladeEncoder against the textbook implementation, pruning, saving and loading, errors."""

from __future__ import annotations

import numpy as np
import pytest
from splade_reference import naive_splade

import lsr
from lsr.errors import LsrError
from lsr.texts import iter_texts

from conftest import SCIFACT


@pytest.fixture(scope="module")
def enc():
    return lsr.load_encoder("splade-tiny", batch_size=4)


@pytest.fixture(scope="module")
def texts():
    docs = [r.full_text for r, _ in zip(iter_texts(SCIFACT / "corpus.jsonl.gz"), range(10), strict=False)]
    return docs + [
        "",
        "a",
        "vitamin d deficiency and bone fractures in the elderly",
        "ünïcödé, 日本語 and emoji 🙂 text",
        "word " * 400,  # longer than any max length: truncated
        "The quick brown fox.",
        "   ",  # whitespace only: [CLS] [SEP], like the empty string
        "Ω≈ç√ ∫ ÷ – “quoted” …",
        "COVID-19 (SARS-CoV-2) p53 IL-6 TNF-α 10.5 mg/kg",
        "antibodies " * 300 + "final words past the cut",
    ]


@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_documents_equal_naive_reference(enc, texts, pooling):
    e = (
        lsr.load_encoder("splade-tiny", batch_size=4, pooling=pooling, doc_max_length=128)
        if pooling == "sum"
        else enc
    )
    got = e.encode_documents(texts).to_scipy().toarray()
    want = naive_splade(
        e.model, e.tokenizer, texts, max_length=e.doc_max_length, pooling=pooling, batch_size=5
    )
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert (got > 0).sum(axis=1).min() > 0


def test_queries_use_query_length(texts):
    e = lsr.load_encoder("splade-tiny", query_max_length=16, batch_size=3)
    got = e.encode_queries(texts).to_scipy().toarray()
    want = naive_splade(e.model, e.tokenizer, texts, max_length=16)
    # a query with no usable token ("", whitespace: only [CLS] [SEP]) is empty, not its expansion
    special = set(e.tokenizer.all_special_ids)
    no_token = [set(ids) <= special for ids in e.tokenizer(texts)["input_ids"]]
    assert sum(no_token) == 2
    want[no_token] = 0
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert not np.allclose(got, e.encode_documents(texts).to_scipy().toarray())


def test_batch_layout(enc, texts):
    b = enc.encode_documents(texts)
    assert len(b) == len(texts) and b.vocab is enc.vocab and len(enc.vocab) == 30522
    assert b.indices.dtype == np.int32 and b.data.dtype == np.float32 and b.indptr.dtype == np.int64
    for i in range(len(b)):
        idx, w = b.row(i)
        assert np.all(np.diff(idx) > 0) and np.all(w > 0)
    assert enc.vocab.tokens == enc.tokenizer.convert_ids_to_tokens(list(range(30522)))
    assert enc.vocab.token(enc.vocab.get("vitamin")) == "vitamin"
    assert enc.encode_documents([]).indptr.tolist() == [0]


def test_top_k_and_threshold(enc, texts):
    full = enc.encode_documents(texts).to_scipy().toarray()
    top = lsr.load_encoder("splade-tiny", doc_top_k=20).encode_documents(texts).to_scipy().toarray()
    for f, t in zip(full, top, strict=True):
        kept = np.flatnonzero(t)
        assert len(kept) == min(20, np.count_nonzero(f))
        np.testing.assert_allclose(t[kept], f[kept], atol=1e-5)  # another batch size: float noise only
        assert f[kept].min() >= np.sort(f)[-20] - 1e-5
    thr = (
        lsr.load_encoder("splade-tiny", threshold=0.5, batch_size=4)
        .encode_documents(texts)
        .to_scipy()
        .toarray()
    )
    assert np.array_equal(thr, np.where(full > 0.5, full, 0))


def test_save_and_load_round_trip(enc, tmp_path, texts):
    e = lsr.load_encoder("splade-tiny", doc_max_length=64, doc_top_k=50)
    e.save(tmp_path / "m")
    back = lsr.load_encoder(str(tmp_path / "m"))
    cfg, cfg2 = e.config(), back.config()
    for key in ("kind", "doc_max_length", "doc_top_k", "pooling", "query_max_length", "precision"):
        assert cfg[key] == cfg2[key]
    np.testing.assert_array_equal(e.encode_documents(texts[:4]).data, back.encode_documents(texts[:4]).data)


def test_bfloat16_agrees_on_top_terms(texts):
    # Measured on these 8 SciFact documents (128 tokens): mean top-64 overlap 0.998, min 0.984; largest
    # weight difference 0.016 on weights up to 2.5 (AMD EPYC, AVX2, torch 2.13). Floor: 0.9.
    texts = texts[:8]  # bf16 is emulated (slow) on CPUs without bf16 units: keep it small
    f32 = lsr.load_encoder("splade-tiny", doc_max_length=128).encode_documents(texts).to_scipy().toarray()
    bf = lsr.load_encoder("splade-tiny", doc_max_length=128, precision="bfloat16").encode_documents(texts)
    bf = bf.to_scipy().toarray()
    overlaps = []
    for a, b in zip(f32, bf, strict=True):
        ta = set(np.argsort(-a)[:64][a[np.argsort(-a)[:64]] > 0])
        tb = set(np.argsort(-b)[:64][b[np.argsort(-b)[:64]] > 0])
        overlaps.append(len(ta & tb) / max(1, len(ta)))
    print(f"bf16 top-64 overlap: mean {np.mean(overlaps):.3f}, min {np.min(overlaps):.3f}")
    assert np.mean(overlaps) >= 0.9, overlaps


def test_load_errors(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LsrError, match="no such directory"):
        lsr.load_encoder("./no/such/model")
    with pytest.raises(LsrError, match="Hugging Face hub"):
        lsr.load_encoder("nobody-xyz/not-a-model")
    with pytest.raises(LsrError, match="unknown SPLADE setting"):
        lsr.load_encoder("splade-tiny", max_len=3)
    with pytest.raises(LsrError, match="pooling"):
        lsr.load_encoder("splade-tiny", pooling="mean")
    with pytest.raises(LsrError, match="exceeds"):
        lsr.load_encoder("splade-tiny", doc_max_length=100000)
    with pytest.raises(LsrError, match="list of texts"):
        lsr.load_encoder("splade-tiny").encode_queries("just a string")


def test_unreachable_hub_fails_fast(monkeypatch):
    """Without HF_HUB_OFFLINE, an unreachable hub is detected by a quick probe, not ~45 s of retries."""
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    t0 = time.perf_counter()
    with pytest.raises(LsrError, match=r"could not be reached \(offline\?\)"):
        lsr.load_encoder("nobody-xyz/not-a-model")
    assert time.perf_counter() - t0 < 10
