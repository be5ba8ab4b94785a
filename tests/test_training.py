"""Training: losses against numpy references, the sparse-backward max pooling against plain autograd,
and ``lsr train`` end to end (determinism, resume, checkpoints, errors) on a tiny BEIR folder."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lsr import losses  # noqa: E402
from lsr.encoders.maxpool import max_pool_projection  # noqa: E402
from lsr.errors import LsrError  # noqa: E402


# -- losses vs numpy ----------------------------------------------------------------------------------
def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_losses_match_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    b, n, v = 4, 3, 50
    q = rng.random((b, v)) * (rng.random((b, v)) < 0.3)
    d = rng.random((b * n, v)) * (rng.random((b * n, v)) < 0.3)
    tq, td = torch.tensor(q), torch.tensor(d)
    # contrastive, in-batch: every query against every document, target its own positive
    s = q @ d.T
    ref = -np.mean(_log_softmax(s)[np.arange(b), np.arange(b) * n])
    assert float(losses.contrastive(tq, td, n)) == pytest.approx(ref, rel=1e-10)
    own = np.einsum("bv,bnv->bn", q, d.reshape(b, n, v))
    ref = -np.mean(_log_softmax(own)[:, 0])
    assert float(losses.contrastive(tq, td, n, in_batch=False)) == pytest.approx(ref, rel=1e-10)
    assert np.allclose(losses.own_scores(tq, td, n).numpy(), own)
    t = rng.random((b, n)) * 10
    ref = np.mean(((own[:, :1] - own[:, 1:]) - (t[:, :1] - t[:, 1:])) ** 2)
    assert float(losses.margin_mse(torch.tensor(own), torch.tensor(t))) == pytest.approx(ref, rel=1e-10)
    pt = np.exp(_log_softmax(t / 2))
    ref = np.mean((pt * (np.log(pt) - _log_softmax(own / 2))).sum(axis=1))
    assert float(losses.kl_distillation(torch.tensor(own), torch.tensor(t), 2.0)) == pytest.approx(
        ref, rel=1e-9
    )
    ref = np.sum(np.abs(d).mean(axis=0) ** 2)
    assert float(losses.flops(td)) == pytest.approx(ref, rel=1e-10)
    idf = rng.random(v) * 5
    ref = np.sum(np.abs(d).mean(axis=0) ** 2 / np.maximum(idf, 1e-3))
    w = losses.idf_flops_weights(torch.tensor(idf))
    assert float(losses.regularizer("idf_flops", td, w)) == pytest.approx(ref, rel=1e-10)
    assert float(losses.l1(td)) == pytest.approx(np.abs(d).sum(axis=1).mean(), rel=1e-10)


def test_schedules() -> None:
    assert losses.warmup_factor(0, 10) == 0.0
    assert losses.warmup_factor(5, 10) == pytest.approx(0.25)
    assert losses.warmup_factor(50, 10) == 1.0
    assert losses.warmup_factor(3, 0) == 1.0
    assert losses.linear_schedule(0, 4, 10) == pytest.approx(0.25)
    assert losses.linear_schedule(4, 4, 10) == pytest.approx(1.0)
    assert losses.linear_schedule(7, 4, 10) == pytest.approx(0.5)
    assert losses.linear_schedule(10, 4, 10) == 0.0


# -- the sparse-backward max pooling -------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_max_pool_projection_matches_autograd(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    b, length, hidden, vocab = 3, 9, 8, 5000  # vocab > one tile
    h = torch.randn(b, length, hidden, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(vocab, hidden, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(vocab, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[1, 5:] = False
    mask[2, 1:] = False
    out = max_pool_projection(h, mask, w, bias)
    ref = (h @ w.T + bias).masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
    assert torch.allclose(out, ref, atol=1e-12)
    weights = torch.rand(b, vocab, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((torch.log1p(torch.relu(out)) * weights).sum(), [h, w, bias])
    want = torch.autograd.grad((torch.log1p(torch.relu(ref)) * weights).sum(), [h, w, bias])
    for a, c in zip(got, want, strict=True):
        assert torch.allclose(a, c, atol=1e-10)
    assert got[0][1, 5:].abs().sum() == 0  # padding gets no gradient


def test_splade_forward_train_equals_encoding() -> None:
    import lsr

    encoder = lsr.load_encoder("splade-tiny")
    texts = ["vitamin d deficiency and fractures", "DNA repair enzymes fix double strand breaks in cells."]
    with torch.no_grad():
        dense = encoder.forward_train(texts, "document").numpy()
    b = encoder.encode_documents(texts)
    ref = np.zeros_like(dense)
    for i in range(len(texts)):
        s, e = b.indptr[i], b.indptr[i + 1]
        ref[i, b.indices[s:e]] = b.data[s:e]
    assert np.allclose(dense, ref, atol=1e-5)


# -- lsr train end to end ------------------------------------------------------------------------------
DOCS = {
    "d0": "Vitamin D deficiency increases the risk of hip fractures in elderly women.",
    "d1": "Mitochondria produce ATP through oxidative phosphorylation in eukaryotic cells.",
    "d2": "Statins lower LDL cholesterol and reduce cardiovascular events.",
    "d3": "Aspirin inhibits platelet aggregation by blocking cyclooxygenase.",
    "d4": "Insulin resistance precedes type 2 diabetes in obese adults.",
    "d5": "Smoking is the main cause of lung cancer worldwide.",
    "d6": "Exercise improves insulin sensitivity in skeletal muscle.",
    "d7": "Calcium and vitamin D supplements and bone density in older people.",
    "d8": "Tumor suppressor p53 triggers apoptosis after DNA damage.",
    "d9": "Antibiotic resistance spreads through horizontal gene transfer in bacteria.",
}
QUERIES = {
    "q0": "vitamin d and fractures",
    "q1": "how do cells make ATP",
    "q2": "statins cholesterol heart",
    "q3": "what causes lung cancer",
    "q4": "insulin resistance diabetes",
    "q5": "p53 apoptosis",
}
QRELS = {"q0": "d0", "q1": "d1", "q2": "d2", "q3": "d5", "q4": "d4", "q5": "d8"}


@pytest.fixture
def beir(tmp_path):
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as f:
        for d, t in DOCS.items():
            f.write(json.dumps({"_id": d, "title": "", "text": t}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        for q, t in QUERIES.items():
            f.write(json.dumps({"_id": q, "text": t}) + "\n")
    for split, keys in (("train", ["q0", "q1", "q2", "q3"]), ("dev", ["q4", "q5"])):
        with open(root / "qrels" / f"{split}.tsv", "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for q in keys:
                f.write(f"{q}\t{QRELS[q]}\t1\n")
    return str(root)


def _cfg(beir: str, out: str, **kw):
    from lsr.training import TrainConfig

    base = dict(
        model="splade-tiny",
        data=beir,
        output=out,
        negatives="bm25",
        n_negatives=1,
        negatives_depth=5,
        batch_size=2,
        steps=4,
        lr=1e-4,
        checkpoint_every=2,
        seed=7,
        device="cpu",
        encoder_options={"doc_max_length": 32, "query_max_length": 16},
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(os.path.join(path, "model.safetensors"))


@pytest.mark.system  # a training run
def test_train_is_deterministic_and_resumes_exactly(beir, tmp_path) -> None:
    from lsr.training import train

    a = train(_cfg(beir, str(tmp_path / "a")))
    train(_cfg(beir, str(tmp_path / "b")))
    wa, wb = _weights(str(tmp_path / "a")), _weights(str(tmp_path / "b"))
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    start = _weights(str(__import__("lsr").encoders.base.BUNDLED_MODELS["splade-tiny"]))
    assert any(not np.array_equal(wa[k], start[k]) for k in wa if k in start)  # it did learn something
    assert a["steps"] == 4 and a["last"]["d_nnz"] > 0
    log = [json.loads(x) for x in open(tmp_path / "a" / "train_log.jsonl")]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    # interrupted after step 2 (checkpoint), then resumed: the same weights as the uninterrupted run
    c_out = str(tmp_path / "c")
    train(_cfg(beir, c_out, steps=4, checkpoint_every=2))
    import shutil

    shutil.rmtree(os.path.join(c_out, "checkpoints", "step-000004"))
    for name in ("model.safetensors", "train_report.json"):
        os.remove(os.path.join(c_out, name))
    r = train(_cfg(beir, c_out))
    assert r["resumed_from"].endswith("step-000002") and r["steps"] == 4
    wc = _weights(c_out)
    assert all(np.array_equal(wa[k], wc[k]) for k in wa)
    assert sorted(os.listdir(os.path.join(c_out, "checkpoints"))) == ["step-000002", "step-000004"]


@pytest.mark.system  # a training run
def test_train_dev_eval_and_reload(beir, tmp_path) -> None:
    import lsr
    from lsr.training import train

    out = str(tmp_path / "m")
    r = train(_cfg(beir, out, steps=2, dev_split="dev", eval_every=1, negatives="model"))
    assert [e["step"] for e in r["dev"]] == [1, 2]
    assert 0.0 <= r["dev"][-1]["ndcg@10"] <= 1.0 and r["dev"][-1]["queries"] == 2
    enc = lsr.load_encoder(out)
    assert enc.kind == "splade" and enc.doc_max_length == 32
    assert len(enc.encode_queries(["vitamin d"]).indices) > 0


@pytest.mark.system  # a training run
def test_train_unicoil_and_inference_free(beir, tmp_path) -> None:
    import lsr
    from lsr.training import train

    out = str(tmp_path / "u")
    r = train(_cfg(beir, out, kind="unicoil", steps=2, loss="contrastive", reg="l1", lambda_q=1e-4))
    assert r["encoder"]["kind"] == "unicoil"
    enc = lsr.load_encoder(out)
    assert enc.kind == "unicoil"
    out = str(tmp_path / "if")
    # model negatives: an IDF-weighted model takes its query weights from the index it mines with
    r = train(
        _cfg(
            beir,
            out,
            kind="inference-free",
            steps=2,
            reg="idf_flops",
            learn_query_weights=True,
            negatives="model",
        )
    )
    enc = lsr.load_encoder(out)
    assert enc.kind == "inference-free" and enc.query_weights == "table" and enc.table.shape == (30522,)


def test_train_distillation_with_teacher(beir, tmp_path) -> None:
    from lsr.training import train

    teacher = tmp_path / "teacher.tsv"
    with open(teacher, "w") as f:
        for q, d in QRELS.items():
            for doc in DOCS:
                f.write(f"{q}\t{doc}\t{10.0 if doc == d else 1.0}\n")
    for loss in ("margin_mse", "kl"):
        r = train(_cfg(beir, str(tmp_path / loss), loss=loss, teacher=str(teacher), steps=2, n_negatives=2))
        assert np.isfinite(r["last"]["rank_loss"])


def test_train_refuses_bad_settings(beir, tmp_path) -> None:
    from lsr.training import train

    with pytest.raises(LsrError, match="teacher"):
        train(_cfg(beir, str(tmp_path / "x"), loss="margin_mse"))
    with pytest.raises(LsrError, match="loss must be"):
        train(_cfg(beir, str(tmp_path / "x"), loss="hinge"))
    with pytest.raises(LsrError, match="batch_size"):
        train(_cfg(beir, str(tmp_path / "x"), batch_size=0))
    with pytest.raises(LsrError, match="negatives"):
        train(_cfg(beir, str(tmp_path / "x"), negatives="/no/such/file.tsv"))
    with pytest.raises(LsrError, match="no qrels/test2"):
        train(_cfg(beir, str(tmp_path / "x"), split="test2"))


def test_cli_train(beir, tmp_path, capsys) -> None:
    from lsr.cli.main import main

    out = str(tmp_path / "cli")
    rc = main(
        [
            "train",
            "--data",
            beir,
            "--output",
            out,
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--negatives",
            "none",
            "--doc-max-length",
            "32",
            "--query-max-length",
            "16",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    assert "trained 2 steps" in capsys.readouterr().err
    assert os.path.isfile(os.path.join(out, "train_report.json"))
    assert main(["train", "--data", beir, "--output", out, "--loss", "kl"]) == 2


@pytest.mark.system  # a training run
def test_train_dyvo_through_the_shared_trainer(beir, tmp_path) -> None:
    """DyVo trains with the same trainer: the entity head learns, and the result reloads as DyVo."""
    import lsr
    from lsr.encoders.dyvo import DyVoEncoder
    from lsr.entities import Entity, EntityStore, name_embeddings
    from lsr.training import train

    splade = lsr.load_encoder("splade-tiny")
    ents = [Entity("vitamin_d", "vitamin D"), Entity("lung_cancer", "lung cancer"), Entity("p53", "p53")]
    store = EntityStore(ents, name_embeddings(splade.model, splade.tokenizer, [e.name for e in ents]))
    start = str(tmp_path / "dyvo0")
    DyVoEncoder.from_splade(splade, store, doc_max_length=32, query_max_length=16).save(start)
    out = str(tmp_path / "dyvo1")
    r = train(_cfg(beir, out, model=start, steps=2, encoder_options={}))
    assert r["encoder"]["kind"] == "dyvo"
    trained = lsr.load_encoder(out)
    before = lsr.load_encoder(start)
    assert trained.kind == "dyvo" and len(trained.vocab) == 30522 + 3
    assert not torch.equal(trained.head.bias, before.head.bias)  # the entity head was trained
    q = trained.encode_queries(["vitamin d and lung cancer"])
    assert {"ENT:vitamin_d", "ENT:lung_cancer"} <= set(q.to_dicts()[0])
