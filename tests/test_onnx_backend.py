"""SpladeEncoder(backend="onnx"): the same vectors as the torch path, and clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import lsr
from lsr.errors import LsrError
from lsr.texts import iter_texts

from conftest import SCIFACT

TOL = 1e-4  # the stated tolerance: float32 rounding only (measured max |diff| ~1e-5)


@pytest.fixture(scope="module")
def texts():
    docs = [r.full_text for r, _ in zip(iter_texts(SCIFACT / "corpus.jsonl.gz"), range(6), strict=False)]
    return docs + ["", "a", "ünïcödé, 日本語 and emoji 🙂 text", "word " * 400, "The quick brown fox."]


@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_onnx_backend_matches_torch(texts, pooling):
    pytest.importorskip("onnxruntime")
    opts = {"pooling": pooling, "doc_max_length": 128, "batch_size": 4, "doc_top_k": 64}
    ref = lsr.load_encoder("splade-tiny", **opts)
    onnx = lsr.load_encoder("splade-tiny", backend="onnx", **opts)
    for fn in ("encode_documents", "encode_queries"):
        a = getattr(ref, fn)(texts).to_scipy().toarray()
        b = getattr(onnx, fn)(texts).to_scipy().toarray()
        assert np.abs(a - b).max() <= TOL
        assert ((a > 0) != (b > 0)).sum() <= 2  # a weight within TOL of a pruning edge may flip
    assert onnx.config() == ref.config()  # a speed-only setting: the index sees the same encoder


def test_onnx_backend_refresh_reexports(texts):
    pytest.importorskip("onnxruntime")
    import torch

    enc = lsr.load_encoder("splade-tiny", backend="onnx", doc_max_length=64)
    before = enc.encode_documents(texts[:2]).to_scipy().toarray()
    with torch.no_grad():
        enc._decoder.bias.add_(0.5)
    enc.refresh()
    assert enc.backend == "onnx" and enc._session is None
    after = enc.encode_documents(texts[:2]).to_scipy().toarray()
    ref = lsr.load_encoder("splade-tiny", doc_max_length=64)
    ref.model = enc.model
    ref.refresh()
    assert np.abs(after - ref.encode_documents(texts[:2]).to_scipy().toarray()).max() <= TOL
    assert np.abs(after - before).max() > 0.1


def test_onnx_backend_errors(monkeypatch):
    with pytest.raises(LsrError, match="backend must be one of"):
        lsr.load_encoder("splade-tiny", backend="tensorrt")
    with pytest.raises(LsrError, match="float32"):
        lsr.load_encoder("splade-tiny", backend="onnx", precision="bfloat16")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(LsrError, match="pip install onnxruntime"):
        lsr.load_encoder("splade-tiny", backend="onnx")


def test_dyvo_onnx_backend_matches_torch(texts):
    """DyVo with backend="onnx": the word pieces from SPLADE's ONNX graph, the entity head on the token
    states the same graph returns; the vectors equal the torch path's to float32 rounding."""
    pytest.importorskip("onnxruntime")
    from lsr.encoders.dyvo import DyVoEncoder
    from lsr.entities import Entity, EntityStore, name_embeddings

    base = lsr.load_encoder("splade-tiny")
    ents = [Entity("fox", "quick brown fox"), Entity("emoji", "emoji text"), Entity("cells", "stem cells")]
    store = EntityStore(ents, name_embeddings(base.model, base.tokenizer, [e.name for e in ents]))
    opts = {"doc_max_length": 128, "batch_size": 4}
    ref = DyVoEncoder.from_splade(base, store, **opts)
    onnx = DyVoEncoder.from_splade(base, store, backend="onnx", **opts)
    for fn in ("encode_documents", "encode_queries"):
        a = getattr(ref, fn)(texts).to_scipy().toarray()
        b = getattr(onnx, fn)(texts).to_scipy().toarray()
        assert np.abs(a - b).max() <= TOL
        assert ((a > 0) != (b > 0)).sum() <= 2
        assert (a[:, base.vocab_size :] > 0).any()  # entities were scored
    assert onnx.config() == ref.config()
    with pytest.raises(LsrError, match="backend must be"):
        DyVoEncoder.from_splade(base, store, backend="tensorrt")
