"""Inference-free SPLADE and uniCOIL: vectors against plain references, save/load, search through an index."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

pytest.importorskip("torch")

import lsr  # noqa: E402
from lsr.errors import LsrError  # noqa: E402

DOCS = [
    "Vitamin D deficiency raises fracture risk in elderly women.",
    "Cells divide by mitosis; DNA repair enzymes fix breaks.",
    "The cat sat on the mat, the cat slept.",
    "Statins lower LDL cholesterol.",
]


@pytest.fixture(scope="module")
def inference_free():
    return lsr.load_encoder("splade-tiny", kind="inference-free")


@pytest.fixture(scope="module")
def unicoil():
    return lsr.load_encoder("splade-tiny", kind="unicoil")


# -- inference-free --------------------------------------------------------------------------------
def test_query_pieces_equal_the_tokenizer(inference_free) -> None:
    tok = inference_free.tokenizer
    rng = random.Random(0)
    words = [
        "Hello,",
        "world!",
        "vitamin-D",
        "(fracture)",
        "e.g.",
        "don't",
        "12.5%",
        "x",
        "ab\tcd",
        "A\nB",
        "naïve",
        "café",
        "Ωmega",
        "北京",
        "a\x1fb",
        "tab\x0bvt",
        "[SEP]",
        "[CLS]x",
        "  ",
        "ÀÉÎ",
    ]
    for _ in range(1500):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 10)))
        assert inference_free.query_pieces(text) == tok(text, add_special_tokens=False)["input_ids"][:254], (
            text
        )


def test_inference_free_queries_are_a_table_lookup(inference_free) -> None:
    enc = lsr.load_encoder("splade-tiny", kind="inference-free")
    rng = np.random.default_rng(0)
    table = rng.random(len(enc.vocab)).astype(np.float32)
    table[rng.random(len(table)) < 0.2] = 0
    enc.set_table(table)
    texts = ["vitamin d and the fractures of the elderly", "[CLS] cat cat cat", "", "Ωmega café"]
    b = enc.encode_queries(texts)
    special = set(enc.tokenizer.all_special_ids)
    for i, t in enumerate(texts):
        ids = sorted(set(enc.tokenizer(t, add_special_tokens=False)["input_ids"]) - special)
        ids = [x for x in ids if table[x] > 0]
        s, e = b.indptr[i], b.indptr[i + 1]
        assert b.indices[s:e].tolist() == ids
        assert np.array_equal(b.data[s:e], table[ids])


def test_inference_free_documents_are_splade(inference_free) -> None:
    splade = lsr.load_encoder("splade-tiny")
    a, b = inference_free.encode_documents(DOCS), splade.encode_documents(DOCS)
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)


def test_inference_free_idf_from_the_index(tmp_path) -> None:
    from lsr.index import build_index, open_index

    enc = lsr.load_encoder("splade-tiny", kind="inference-free")
    with pytest.raises(LsrError, match="IDF of the indexed corpus"):
        enc.encode_queries(["vitamin"])
    docs = enc.encode_documents(DOCS)
    path = build_index(docs, tmp_path / "ix", encoder=enc, methods=("exact",))
    ix = open_index(path)
    res = ix.search(["vitamin d fracture"], k=4, encoder=enc)
    assert ix.search(["vitamin d fracture"], k=4)[0].ids == res[0].ids  # the recorded encoder, too
    # searching did not rewrite the shared encoder: the index's IDF lives in the retriever's view
    with pytest.raises(LsrError, match="IDF of the indexed corpus"):
        enc.encode_queries(["vitamin"])
    # the weights are BM25's IDF of each term's posting list
    df = np.bincount(docs.indices, minlength=len(enc.vocab))
    q = lsr.Retriever(ix, enc).encode_queries(["vitamin d fracture"])
    for t, w in zip(q.indices, q.data, strict=True):
        assert w == pytest.approx(np.log1p((len(DOCS) - df[t] + 0.5) / (df[t] + 0.5)), rel=1e-6)
    # and search scores are the dot products with the documents
    dense = docs.to_scipy().toarray()
    qd = np.zeros(len(enc.vocab), np.float32)
    qd[q.indices] = q.data
    want = dense @ qd
    assert res[0].ids[0] == str(int(np.argmax(want)))
    assert res[0].scores[0] == pytest.approx(float(want.max()), rel=1e-5)


def test_inference_free_save_load(tmp_path) -> None:
    enc = lsr.load_encoder("splade-tiny", kind="inference-free")
    enc.save(tmp_path / "idf")
    again = lsr.load_encoder(str(tmp_path / "idf"))
    assert again.kind == "inference-free" and again.query_weights == "idf" and again.table is None
    table = np.linspace(0, 2, len(enc.vocab)).astype(np.float32)
    enc.set_table(table)
    enc.save(tmp_path / "table")
    again = lsr.load_encoder(str(tmp_path / "table"))
    assert again.query_weights == "table" and np.array_equal(again.table, table)
    assert again.config()["table_sha256"] == enc.config()["table_sha256"]
    with pytest.raises(LsrError, match="query weight table"):
        enc.set_table(np.ones(5, np.float32))
    # an index built with the table-weighted model encodes text queries with that table
    from lsr.index import build_index, open_index

    ix = open_index(
        build_index(again.encode_documents(DOCS), tmp_path / "ix", encoder=again, methods=("exact",))
    )
    q = ix.encode_queries(["vitamin d"])
    assert np.array_equal(q.data, table[q.indices])
    assert ix.search(["vitamin d"], k=2)[0].ids == ix.search(q, k=2)[0].ids


# -- uniCOIL ----------------------------------------------------------------------------------------
def _reference_unicoil(enc, texts):
    """Plain per-text reference: relu(tok_proj(h)) per token, max per term, specials dropped."""
    import torch

    out = []
    special = set(enc.tokenizer.all_special_ids)
    for t in texts:
        x = enc.tokenizer([t], truncation=True, max_length=enc.doc_max_length, return_tensors="pt")
        with torch.no_grad():
            h = enc.model.bert(**x).last_hidden_state[0]
            w = torch.relu(enc.model.tok_proj(h))[:, 0].numpy()
        vec: dict[int, float] = {}
        for tid, wt in zip(x["input_ids"][0].tolist(), w, strict=True):
            if tid not in special and wt > 0:
                vec[tid] = max(vec.get(tid, 0.0), float(wt))
        out.append(vec)
    return out


def test_unicoil_matches_reference_and_forward_train(unicoil) -> None:
    import torch

    b = unicoil.encode_documents(DOCS)
    ref = _reference_unicoil(unicoil, DOCS)
    for i, vec in enumerate(ref):
        s, e = b.indptr[i], b.indptr[i + 1]
        assert b.indices[s:e].tolist() == sorted(vec)
        assert np.allclose(b.data[s:e], [vec[t] for t in sorted(vec)], atol=1e-5)
    with torch.no_grad():
        dense = unicoil.forward_train(DOCS, "document").numpy()
    assert np.allclose(dense, b.to_scipy().toarray(), atol=1e-5)
    # no expansion: only the text's own word pieces
    pieces = set(unicoil.tokenizer(DOCS[2], add_special_tokens=False)["input_ids"])
    assert set(b.indices[b.indptr[2] : b.indptr[3]].tolist()) <= pieces


def test_unicoil_castorini_layout_round_trip(unicoil, tmp_path) -> None:
    import torch

    unicoil.save(tmp_path / "u")
    again = lsr.load_encoder(str(tmp_path / "u"))
    assert again.kind == "unicoil"
    a, b = unicoil.encode_documents(DOCS), again.encode_documents(DOCS)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)
    # a castorini checkpoint: pytorch_model.bin, keys under coil_encoder., no lsr_encoder.json
    d = tmp_path / "castorini"
    d.mkdir()
    unicoil.model.config.save_pretrained(d)
    unicoil.tokenizer.save_pretrained(d)
    torch.save(
        {f"coil_encoder.{k}": v for k, v in unicoil.model.state_dict().items()}, d / "pytorch_model.bin"
    )
    c = lsr.load_encoder(str(d), kind="unicoil")
    assert np.array_equal(c.encode_documents(DOCS).data, a.data)
    with pytest.raises(LsrError, match="no model weights"):
        os.remove(d / "pytorch_model.bin")
        lsr.load_encoder(str(d), kind="unicoil")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(LsrError, match="unknown encoder kind 'colbert'.*unicoil"):
        lsr.load_encoder("splade-tiny", kind="colbert")
