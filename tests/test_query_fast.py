"""The SPLADE query fast path (lsr.encoders.query_fast): the same vectors as the reference path.

The int8 screen must never drop a term whose max logit is positive (checked against a float64 brute-force
oracle, adversarial token states included), and the encoder's fast path must give the reference path's
terms and weights (to float32 rounding) on every kind of query text, alone or in a batch, with every
option that touches the vectors (top-k, threshold, special tokens, activation), with either backbone.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import lsr
from lsr.encoders import splade as splade_mod
from lsr.encoders.query_fast import ScreenedProjection, int8_gemm_available
from lsr.errors import LsrError

pytestmark = pytest.mark.skipif(not int8_gemm_available(), reason="this torch has no CPU int8 GEMM")

ATOL = RTOL = 1e-5  # float32 rounding (a different summation order): measured max |diff| ~6e-6

QUERIES = [
    "0-dimensional biomaterials show inductive properties.",
    "A deficiency of vitamin B12 increases blood levels of homocysteine.",
    "does vitamin d prevent fractures",
    "",
    "a",
    "   ",
    "🙂",  # no usable token: an empty vector on both paths
    "\u200b",
    "ünïcödé, 日本語 and emoji 🙂 text",
    "Ω≈ç√ ∫ ÷ – “quoted” …",
    "COVID-19 (SARS-CoV-2) p53 IL-6 TNF-α 10.5 mg/kg",
    "word " * 400,  # longer than query_max_length: truncated
    "antibodies " * 300 + "final words past the cut",
]


def _random_texts(n: int, seed: int) -> list[str]:
    """Random queries: words of the bundled vocabulary, random letters and random code points."""
    rng = np.random.default_rng(seed)
    words = ["cell", "protein", "cancer", "the", "of", "tumour", "ß", "naïve", "日本", "DNA", "x", "1,000"]
    out = []
    for _ in range(n):
        kind = rng.integers(3)
        if kind == 0:
            out.append(" ".join(rng.choice(words, rng.integers(1, 40))))
        elif kind == 1:
            out.append("".join(chr(c) for c in rng.integers(32, 127, rng.integers(1, 80))))
        else:
            out.append("".join(chr(c) for c in rng.integers(32, 0x3000, rng.integers(1, 30))))
    return out


def _dense(batch) -> np.ndarray:
    return batch.to_scipy().toarray()


def _assert_same(fast: np.ndarray, ref: np.ndarray) -> None:
    assert fast.shape == ref.shape
    diff = np.abs(fast - ref)
    assert (diff <= ATOL + RTOL * np.abs(ref)).all(), f"max |diff| {diff.max():.2e}"
    # the same terms, save a weight within float rounding of 0 (none on these texts)
    assert (((fast > 0) != (ref > 0)) & (np.maximum(fast, ref) > ATOL)).sum() == 0


# -- the screen against a float64 oracle --------------------------------------------------------------
def _oracle(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return (h.double() @ w.double().T + b.double()).amax(0).numpy()


@pytest.mark.parametrize(
    "case", ["gaussian", "outlier-dims", "one-token", "same-tokens", "huge", "tiny", "near-zero"]
)
def test_screen_never_drops_a_positive_term(case):
    g = torch.Generator().manual_seed(7)
    vocab, hidden = 5000, 48
    w = torch.randn(vocab, hidden, generator=g) * 0.1
    w[::97] *= 20  # heavy rows: large quantization steps
    w[5] = 0  # an all-zero row
    b = torch.randn(vocab, generator=g) * 2 - 10  # most max logits < 0, as with SPLADE
    tokens = {"one-token": 1, "same-tokens": 6}.get(case, 23)
    h = torch.randn(tokens, hidden, generator=g) * 4
    if case == "outlier-dims":
        h[:, 3] *= 40  # one huge dimension sets the int8 scale: the others round coarsely
    if case == "same-tokens":
        h[:] = h[0]
    if case == "huge":
        h *= 1e4
    if case == "tiny":
        h *= 1e-6
    if case == "near-zero":  # every max logit within +-0.05 of 0: any slack missing drops terms
        b = (
            -(h.double() @ w.double().T).amax(0) + torch.rand(vocab, generator=g).double() * 0.1 - 0.05
        ).float()
    screen = ScreenedProjection(w, b)
    terms, logits = screen.pooled(h)
    oracle = _oracle(h, w, b)
    positive = np.flatnonzero(oracle > 0)
    assert len(positive) > 0 or case == "tiny"
    assert set(positive.tolist()) <= set(terms.tolist())  # no positive term dropped
    assert np.all(np.diff(terms.numpy()) > 0)  # ascending, no duplicates
    got = logits.numpy()
    scale = np.abs(h.double().numpy()).sum(1).max() * np.abs(w.numpy()).max() + np.abs(b.numpy()).max()
    assert np.abs(got - oracle[terms.numpy()]).max(initial=0) <= 1e-5 * scale
    if case in ("gaussian", "one-token", "same-tokens"):
        assert len(terms) < 3 * len(positive) + 100  # a screen, not the whole vocabulary


def test_screen_keeps_terms_at_the_edge():
    """Terms whose max logit is a hair above 0 are kept (the margin errs on the side of keeping)."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(2000, 32, generator=g) * 0.2
    h = torch.randn(9, 32, generator=g)
    mx = (h.double() @ w.double().T).amax(0)
    b = (-mx + 1e-4).float()  # every term's max logit ~ +1e-4
    b[::2] = (-mx[::2] - 1e-4).float()  # half at ~ -1e-4
    terms, _ = ScreenedProjection(w, b).pooled(h)
    positive = np.flatnonzero(_oracle(h, w, b) > 0)
    assert set(positive.tolist()) <= set(terms.tolist()) and len(positive) >= 900


# -- the encoder: fast path == reference path --------------------------------------------------------
@pytest.fixture(scope="module")
def reference():
    return lsr.load_encoder("splade-tiny", query_path="reference")


@pytest.fixture(scope="module")
def texts():
    return QUERIES + _random_texts(40, 0)


@pytest.mark.parametrize("path", ["screen-torch", "screen-onnx"])
def test_fast_path_equals_reference_bundled_model(reference, texts, path):
    if path == "screen-onnx":
        pytest.importorskip("onnxruntime")
    fast = lsr.load_encoder("splade-tiny", query_path=path)
    assert fast._fast_query_mode(1) == path.removeprefix("screen-")
    ref = _dense(reference.encode_queries(texts))
    one_by_one = np.vstack([_dense(fast.encode_queries([t])) for t in texts])
    _assert_same(one_by_one, ref)
    small_batch = _dense(fast.encode_queries(texts[:8]))  # <= FAST_MAX_QUERIES: fast path, row by row
    _assert_same(small_batch, ref[:8])
    big_batch = _dense(fast.encode_queries(texts))  # more: the batched reference path
    _assert_same(big_batch, ref)
    # every query with a usable token went the fast path (the others are empty on both paths)
    assert fast._fast_queries == ref.any(1).sum() + ref[:8].any(1).sum()
    assert (ref[QUERIES.index("🙂")] == 0).all() and (one_by_one[QUERIES.index("🙂")] == 0).all()
    assert fast.config() == reference.config()  # speed only: an index sees the same encoder


def _tiny_mlm(folder, seed: int, hidden: int = 32):
    """A random 1-layer BERT masked LM over the bundled tokenizer, saved to ``folder`` (as test_layouts)."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from lsr.encoders.base import BUNDLED_MODELS

    tok = AutoTokenizer.from_pretrained(BUNDLED_MODELS["splade-tiny"])
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    model = BertForMaskedLM(cfg).eval()
    with torch.no_grad():
        model.cls.predictions.bias.normal_(0, 0.5)  # ~30% of the terms positive: a hard case for a screen
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-mlm")
    _tiny_mlm(d, 0)
    return str(d)


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"query_top_k": 25},
        {"threshold": 0.3},
        {"activation": "log1p_relu", "drop_special": True},
        {"query_max_length": 8},
    ],
    ids=["plain", "top-k", "threshold", "log1p-relu+drop-special", "short"],
)
def test_fast_path_equals_reference_random_model(tiny_dir, opts):
    texts = QUERIES + _random_texts(15, 1)
    ref = _dense(lsr.load_encoder(tiny_dir, query_path="reference", **opts).encode_queries(texts))
    fast = lsr.load_encoder(tiny_dir, query_path="screen-torch", **opts)
    got = np.vstack([_dense(fast.encode_queries([t])) for t in texts])
    _assert_same(got, ref)
    if "query_top_k" in opts:
        assert (got > 0).sum(1).max() == opts["query_top_k"]
    if not opts:
        assert (ref > 0).sum() > 1000  # many positive terms: the screen is exercised hard


def test_fast_path_is_thread_safe(reference):
    texts = _random_texts(24, 2)
    ref = _dense(reference.encode_queries(texts))
    fast = lsr.load_encoder("splade-tiny", query_path="screen-torch")
    out: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        for i in range(k, len(texts), 4):
            out[i] = _dense(fast.encode_queries([texts[i]]))[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _assert_same(np.vstack([out[i] for i in range(len(texts))]), ref)


# -- when the fast path applies, settings, errors -----------------------------------------------------
def test_when_the_fast_path_applies(monkeypatch):
    assert lsr.load_encoder("splade-tiny", query_path="reference")._fast_query_mode(1) is None
    assert lsr.load_encoder("splade-tiny", pooling="sum")._fast_query_mode(1) is None
    e = lsr.load_encoder("splade-tiny", query_path="screen-torch")
    assert e._fast_query_mode(splade_mod.FAST_MAX_QUERIES) == "torch"
    assert e._fast_query_mode(splade_mod.FAST_MAX_QUERIES + 1) is None  # big batches: the batched path
    monkeypatch.setenv("LSR_QUERY_PATH", "reference")
    assert lsr.load_encoder("splade-tiny")._fast_query_mode(1) is None
    monkeypatch.setenv("LSR_QUERY_PATH", "fastest")
    with pytest.raises(LsrError, match="query_path must be one of"):
        lsr.load_encoder("splade-tiny")
    with pytest.raises(LsrError, match="query_path must be one of"):
        lsr.load_encoder("splade-tiny", query_path="turbo")


def test_auto_moves_the_backbone_to_onnx_after_a_while(monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.delenv("LSR_QUERY_PATH", raising=False)
    monkeypatch.setattr(splade_mod, "AUTO_ONNX_AFTER", 3)
    e = lsr.load_encoder("splade-tiny")
    assert e.query_path == "auto"
    modes = []
    for t in QUERIES[:5]:
        modes.append(e._fast_query_mode(1))
        e.encode_queries([t])
    assert modes == ["torch", "torch", "torch", "onnx", "onnx"]
    prepared = lsr.load_encoder("splade-tiny")
    prepared.prepare_queries()  # what the service's warm-up calls: no request pays for the export
    assert prepared._query_session and prepared._screen is not None
    assert prepared._fast_query_mode(1) == "onnx"


def test_refresh_rebuilds_the_screen(reference):
    """After the weights change (training), the fast path follows them, as the reference path does."""
    e = lsr.load_encoder("splade-tiny", query_path="screen-torch")
    e.encode_queries(["warm the screen"])
    with torch.no_grad():
        e._decoder.bias.add_(0.5)
    e.refresh()
    assert e._screen is None and e.query_path == "screen-torch"
    ref = lsr.load_encoder("splade-tiny", query_path="reference")
    ref.model = e.model
    ref.refresh()
    texts = QUERIES[:4]
    _assert_same(np.vstack([_dense(e.encode_queries([t])) for t in texts]), _dense(ref.encode_queries(texts)))
