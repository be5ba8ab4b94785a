"""Checkpoint layouts of other libraries (lsr.encoders.layouts): sentence-transformers SparseEncoder folders,
OpenSearch inference-free models, naver/splade split encoders, and ``lsr export --format sentence-transformers``.

Every model is a tiny random masked LM built here from a config (no hub); reference vectors come from
sentence-transformers itself (skipped without it) or from the other project's published encoding code.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lsr  # noqa: E402
from lsr.encoders.base import BUNDLED_MODELS  # noqa: E402
from lsr.errors import LsrError  # noqa: E402

DOCS = [
    "Vitamin D deficiency raises fracture risk in elderly women and men over sixty years of age.",
    "Cells divide by mitosis; DNA repair enzymes fix breaks.",
    "The cat sat on the mat.",
    "statins",
]
QUERIES = ["does vitamin d prevent fractures", "cat mat", "dna repair enzymes in dividing cells"]


def _tiny_mlm(folder, seed: int, max_positions: int = 512):
    """A random 1-layer BERT masked LM over the bundled tokenizer's 30522 word pieces, saved to ``folder``."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tok = AutoTokenizer.from_pretrained(BUNDLED_MODELS["splade-tiny"])
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
    )
    model = BertForMaskedLM(cfg).eval()
    with torch.no_grad():
        model.cls.predictions.bias.normal_(0, 0.5)  # some terms positive, most not: sparse vectors
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, tok


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mlm")
    _tiny_mlm(d, 0)
    return str(d)


@pytest.fixture(scope="module")
def mlm_dir2(tmp_path_factory):
    d = tmp_path_factory.mktemp("mlm2")
    _tiny_mlm(d, 1)
    return str(d)


def _dense(batch) -> np.ndarray:
    out = np.zeros((len(batch), len(batch.vocab)), np.float32)
    for r in range(len(batch)):
        i, w = batch.row(r)
        out[r, i] = w
    return out


def _st_dense(t) -> np.ndarray:
    return (t.to_dense() if t.is_sparse else t).float().numpy()


def _reference(model, tok, texts, max_length, pooling="max", activation="relu", special_zero=False):
    """SPLADE the textbook way (the formula naver's and OpenSearch's code write): full logits, activation,
    mask, pool."""
    x = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        act = torch.log1p(
            torch.relu(model(input_ids=x["input_ids"], attention_mask=x["attention_mask"]).logits)
        )
    if activation == "log1p_relu":
        act = torch.log1p(act)
    act = act * x["attention_mask"].unsqueeze(-1)
    out = act.amax(dim=1) if pooling == "max" else act.sum(dim=1)
    if special_zero:
        out[:, tok.all_special_ids] = 0
    return out.numpy()


# -- sentence-transformers ----------------------------------------------------------------------------
def _st():
    """sentence-transformers' sparse modules (skip without sentence-transformers >= 5)."""
    pytest.importorskip("sentence_transformers", minversion="5.0")
    try:
        import sentence_transformers.sparse_encoder.modules as mods  # v6 name
    except ImportError:
        import sentence_transformers.sparse_encoder.models as mods  # v5 name
    return mods


@pytest.mark.parametrize(("pooling", "activation"), [("max", "relu"), ("sum", "log1p_relu")])
def test_st_sparse_encoder_folder(mlm_dir, tmp_path, pooling, activation) -> None:
    mods = _st()
    from sentence_transformers import SparseEncoder

    MLMTransformer = mods.MLMTransformer
    SpladePooling = mods.SpladePooling

    se = SparseEncoder(
        modules=[
            MLMTransformer(mlm_dir, max_seq_length=12),
            SpladePooling(pooling, activation_function=activation),
        ]
    )
    se.save(str(tmp_path / "st"))
    enc = lsr.load_encoder(str(tmp_path / "st"))
    cfg = enc.config()
    assert (cfg["kind"], cfg["pooling"], cfg["doc_max_length"], cfg["query_max_length"]) == (
        "splade",
        pooling,
        12,
        12,
    )
    assert cfg.get("activation", "relu") == activation
    np.testing.assert_allclose(
        _dense(enc.encode_documents(DOCS)), _st_dense(se.encode_document(DOCS)), atol=2e-5
    )
    np.testing.assert_allclose(
        _dense(enc.encode_queries(QUERIES)), _st_dense(se.encode_query(QUERIES)), atol=2e-5
    )
    assert _dense(enc.encode_documents(DOCS)).any()


def test_st_inference_free_router(mlm_dir, tmp_path) -> None:
    mods = _st()
    from sentence_transformers import SparseEncoder

    MLMTransformer = mods.MLMTransformer
    Router = mods.Router
    SparseStaticEmbedding = mods.SparseStaticEmbedding
    SpladePooling = mods.SpladePooling
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(mlm_dir)
    rng = np.random.default_rng(0)
    weight = torch.tensor(rng.uniform(0, 3, len(tok)).astype(np.float32))
    weight[tok.all_special_ids] = 0  # lsr queries never hold special tokens
    router = Router.for_query_document(
        query_modules=[SparseStaticEmbedding(tokenizer=tok, weight=weight, frozen=True)],
        document_modules=[MLMTransformer(mlm_dir, max_seq_length=20), SpladePooling("max")],
    )
    se = SparseEncoder(modules=[router])
    se.save(str(tmp_path / "st"))
    enc = lsr.load_encoder(str(tmp_path / "st"))
    assert enc.kind == "inference-free" and enc.config()["doc_max_length"] == 20
    np.testing.assert_allclose(
        _dense(enc.encode_documents(DOCS)), _st_dense(se.encode_document(DOCS)), atol=2e-5
    )
    np.testing.assert_allclose(
        _dense(enc.encode_queries(QUERIES)), _st_dense(se.encode_query(QUERIES)), atol=1e-6
    )
    # the config it records reloads the same encoder (what an index does when it searches with text)
    cfg = {k: v for k, v in enc.config().items() if k not in ("kind", "model", "model_path")}
    again = lsr.load_encoder(enc.config()["model_path"], kind="inference-free", **cfg)
    assert again.config() == enc.config()


def test_st_router_with_two_mlms(mlm_dir, mlm_dir2, tmp_path) -> None:
    mods = _st()
    from sentence_transformers import SparseEncoder

    MLMTransformer = mods.MLMTransformer
    Router = mods.Router
    SpladePooling = mods.SpladePooling

    router = Router.for_query_document(
        query_modules=[MLMTransformer(mlm_dir2, max_seq_length=8), SpladePooling("max")],
        document_modules=[MLMTransformer(mlm_dir, max_seq_length=24), SpladePooling("max")],
    )
    se = SparseEncoder(modules=[router])
    se.save(str(tmp_path / "st"))
    enc = lsr.load_encoder(str(tmp_path / "st"))
    cfg = enc.config()
    assert (cfg["kind"], cfg["doc_max_length"], cfg["query_max_length"]) == ("splade", 24, 8)
    np.testing.assert_allclose(
        _dense(enc.encode_documents(DOCS)), _st_dense(se.encode_document(DOCS)), atol=2e-5
    )
    np.testing.assert_allclose(
        _dense(enc.encode_queries(QUERIES)), _st_dense(se.encode_query(QUERIES)), atol=2e-5
    )


def test_st_unsupported_pooling_and_modules(mlm_dir, tmp_path) -> None:
    st_dir = tmp_path / "st"
    shutil.copytree(mlm_dir, st_dir)
    (st_dir / "1_SpladePooling").mkdir()
    (st_dir / "1_SpladePooling" / "config.json").write_text(json.dumps({"pooling_strategy": "mean"}))
    mods = [
        {
            "idx": 0,
            "name": "0",
            "path": "",
            "type": "sentence_transformers.sparse_encoder.models.MLMTransformer",
        },
        {
            "idx": 1,
            "name": "1",
            "path": "1_SpladePooling",
            "type": "sentence_transformers.sparse_encoder.models.SpladePooling",
        },
    ]
    (st_dir / "modules.json").write_text(json.dumps(mods))
    with pytest.raises(LsrError, match="unsupported SpladePooling pooling_strategy 'mean'"):
        lsr.load_encoder(str(st_dir))
    mods[1]["type"] = "sentence_transformers.models.Pooling"  # a dense embedding model, not a sparse one
    (st_dir / "modules.json").write_text(json.dumps(mods))
    with pytest.raises(
        LsrError, match="unsupported sentence-transformers modules MLMTransformer \\+ Pooling"
    ):
        lsr.load_encoder(str(st_dir))


def test_unknown_layout_is_one_line_error(tmp_path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    with pytest.raises(LsrError, match="unknown checkpoint layout") as e:
        lsr.load_encoder(str(tmp_path))
    assert "\n" not in str(e.value)


# -- export --------------------------------------------------------------------------------------------
def _roundtrip(enc, out) -> None:
    """lsr -> ST folder -> SparseEncoder vectors == lsr's -> lsr again == lsr's."""
    from lsr.encoders.layouts import export_sentence_transformers

    export_sentence_transformers(enc, out)
    want_d, want_q = _dense(enc.encode_documents(DOCS)), _dense(enc.encode_queries(QUERIES))
    assert want_d.any() and want_q.any()
    from sentence_transformers import SparseEncoder

    se = SparseEncoder(str(out))
    np.testing.assert_allclose(_st_dense(se.encode_document(DOCS)), want_d, atol=2e-5)
    np.testing.assert_allclose(_st_dense(se.encode_query(QUERIES)), want_q, atol=2e-5)
    back = lsr.load_encoder(str(out))
    assert back.kind == enc.kind
    np.testing.assert_allclose(_dense(back.encode_documents(DOCS)), want_d, atol=1e-6)
    np.testing.assert_allclose(_dense(back.encode_queries(QUERIES)), want_q, atol=1e-6)


def test_export_splade_roundtrip(mlm_dir, tmp_path) -> None:
    _st()
    enc = lsr.load_encoder(mlm_dir, doc_max_length=16, query_max_length=16, pooling="sum")
    with torch.no_grad():  # "trained": weights that differ from the checkpoint's
        enc.model.bert.embeddings.word_embeddings.weight.mul_(1.5)
    enc.refresh()
    _roundtrip(enc, tmp_path / "a")
    # different query and document max lengths: a Router over two copies
    _roundtrip(lsr.load_encoder(mlm_dir, doc_max_length=20, query_max_length=6), tmp_path / "b")


def test_export_inference_free_and_asymmetric_roundtrip(mlm_dir, mlm_dir2, tmp_path) -> None:
    _st()
    enc = lsr.load_encoder(mlm_dir, kind="inference-free", query_max_length=6)
    enc.set_table(np.random.default_rng(1).uniform(0, 2, len(enc.vocab)).astype(np.float32))
    _roundtrip(enc, tmp_path / "if")
    asym = lsr.load_encoder(mlm_dir, query_encoder=mlm_dir2, doc_max_length=20, query_max_length=10)
    _roundtrip(asym, tmp_path / "asym")


def test_export_refuses_what_st_cannot_hold(mlm_dir, tmp_path) -> None:
    from lsr.encoders.layouts import export_sentence_transformers

    with pytest.raises(LsrError, match="top-k"):
        export_sentence_transformers(lsr.load_encoder(mlm_dir, doc_top_k=5), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(LsrError, match="IDF of an index"):
        export_sentence_transformers(lsr.load_encoder(mlm_dir, kind="inference-free"), tmp_path / "y")


# -- naver/splade ------------------------------------------------------------------------------------
def test_naver_split_encoders(tmp_path) -> None:
    """naver/splade's SPLADE.save with shared_weights=False: document MLM state dict at the root
    (pytorch_model.bin + config + tokenizer), the query MLM with save_pretrained in ``query/``."""
    root = tmp_path / "naver"
    doc_model, tok = _tiny_mlm(tmp_path / "d", 3)
    query_model, _ = _tiny_mlm(tmp_path / "q", 4)
    root.mkdir()
    torch.save(doc_model.state_dict(), root / "pytorch_model.bin")
    doc_model.config.save_pretrained(root)
    tok.save_pretrained(root)
    query_model.save_pretrained(root / "query")
    tok.save_pretrained(root / "query")
    enc = lsr.load_encoder(str(root))
    assert enc.kind == "splade" and enc.config()["query_encoder"] == "query"
    np.testing.assert_allclose(
        _dense(enc.encode_documents(DOCS)), _reference(doc_model, tok, DOCS, 256), atol=2e-5
    )
    np.testing.assert_allclose(
        _dense(enc.encode_queries(QUERIES)), _reference(query_model, tok, QUERIES, 256), atol=2e-5
    )
    # saved by lsr and loaded back: the same two encoders
    enc.save(tmp_path / "saved")
    back = lsr.load_encoder(str(tmp_path / "saved"))
    np.testing.assert_allclose(
        _dense(back.encode_queries(QUERIES)), _dense(enc.encode_queries(QUERIES)), atol=1e-6
    )
    # two-repository releases (...-doc / ...-query)
    two = lsr.load_encoder(str(tmp_path / "d"), query_encoder=str(tmp_path / "q"))
    np.testing.assert_allclose(
        _dense(two.encode_queries(QUERIES)), _dense(enc.encode_queries(QUERIES)), atol=1e-6
    )


def test_naver_single_mlm_is_max_pooled_splade(mlm_dir) -> None:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model, tok = AutoModelForMaskedLM.from_pretrained(mlm_dir).eval(), AutoTokenizer.from_pretrained(mlm_dir)
    enc = lsr.load_encoder(mlm_dir)
    assert enc.config()["pooling"] == "max"
    np.testing.assert_allclose(
        _dense(enc.encode_documents(DOCS)), _reference(model, tok, DOCS, 256), atol=2e-5
    )


# -- OpenSearch ----------------------------------------------------------------------------------------
def _opensearch_dir(tmp_path):
    root = tmp_path / "opensearch"
    model, tok = _tiny_mlm(root, 5)
    rng = np.random.default_rng(2)
    vocab = tok.get_vocab()
    special = set(tok.all_special_tokens)
    words = [
        t for t in sorted(vocab) if t not in special and rng.random() < 0.3
    ]  # sorted: the same every run
    words += [t for t in tok.tokenize(" ".join(QUERIES))[::2] if t not in words]  # queries hit the table
    (root / "idf.json").write_text(json.dumps({t: float(rng.uniform(0.1, 9)) for t in words}))
    return root, model, tok


def _opensearch_query_reference(tok, idf_path, texts):
    """OpenSearch's published query encoding: bag of the tokenizer's ids (specials included) x idf table."""
    idf = json.loads(open(idf_path, encoding="utf-8").read())
    table = np.zeros(len(tok), np.float32)
    for t, w in idf.items():
        table[tok.convert_tokens_to_ids(t)] = w
    x = tok(texts, padding=True, truncation=True)["input_ids"]
    out = np.zeros((len(texts), len(tok)), np.float32)
    for r, ids in enumerate(x):
        out[r, ids] = 1
    return out * table


def test_opensearch_inference_free(tmp_path) -> None:
    root, model, tok = _opensearch_dir(tmp_path)
    enc = lsr.load_encoder(str(root))
    assert enc.kind == "inference-free" and enc.config()["query_weights"] == "table"
    np.testing.assert_allclose(
        _dense(enc.encode_documents(DOCS)), _reference(model, tok, DOCS, 512, special_zero=True), atol=2e-5
    )
    want = _opensearch_query_reference(tok, root / "idf.json", QUERIES)
    np.testing.assert_allclose(_dense(enc.encode_queries(QUERIES)), want, atol=1e-6)
    assert want.any()
    # sentence-transformers reads the same idf.json into its SparseStaticEmbedding: same query vectors
    if _have_st():
        sse = _st().SparseStaticEmbedding.from_json(str(root / "idf.json"), tokenizer=tok)
        feats = sse.preprocess(QUERIES)
        with torch.no_grad():
            got = sse(feats)["sentence_embedding"].float().numpy()
        np.testing.assert_allclose(_dense(enc.encode_queries(QUERIES)), got, atol=1e-6)
    # a v3 model's doubled log1p is an option
    v3 = lsr.load_encoder(str(root), activation="log1p_relu")
    np.testing.assert_allclose(
        _dense(v3.encode_documents(DOCS)),
        _reference(model, tok, DOCS, 512, activation="log1p_relu", special_zero=True),
        atol=2e-5,
    )


def test_opensearch_bad_idf_is_one_line_error(tmp_path) -> None:
    root, _, _ = _opensearch_dir(tmp_path)
    (root / "idf.json").write_text(json.dumps({"cat": -1.0}))
    with pytest.raises(LsrError, match="weight of 'cat' must be a finite number >= 0"):
        lsr.load_encoder(str(root))


def _have_st() -> bool:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def test_layout_detection(mlm_dir, tmp_path) -> None:
    from lsr.encoders.layouts import detect_layout

    assert detect_layout(mlm_dir) == "masked-lm"
    assert detect_layout(str(tmp_path)) is None
    assert os.path.isdir(mlm_dir)


def test_cli_export(mlm_dir, tmp_path, capsys) -> None:
    from lsr.cli.main import main

    out = tmp_path / "st"
    assert main(["export", "--format", "sentence-transformers", mlm_dir, str(out)]) == 0
    assert json.loads((out / "modules.json").read_text())[1]["path"] == "1_SpladePooling"
    back = lsr.load_encoder(str(out))
    want = lsr.load_encoder(mlm_dir)
    np.testing.assert_allclose(
        _dense(back.encode_documents(DOCS)), _dense(want.encode_documents(DOCS)), atol=1e-6
    )
    capsys.readouterr()
    assert main(["export", "--format", "sentence-transformers", mlm_dir, str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"lsr: error: {out}: exists and is not an empty directory"
