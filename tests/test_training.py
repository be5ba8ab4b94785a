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


def _scale_gradient(scores: torch.Tensor, target: torch.Tensor, tau: float) -> float:
    """d loss / d alpha at alpha = 1 for the cross-entropy of alpha * scores / tau."""
    alpha = torch.ones((), dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(alpha * scores / tau, target)
    (g,) = torch.autograd.grad(loss, alpha)
    return float(g)


def test_calibrated_temperature_fixes_the_sign_of_the_scale_gradient() -> None:
    """Large scores (like SPLADE's, tens) at tau = 1: the loss wants every score smaller (positive
    gradient w.r.t. a global scale). At the calibrated temperature the scale gradient is ~0 (the
    minimum), and above it the loss wants larger scores: the temperature, not the model, sets it."""
    g = torch.Generator().manual_seed(0)
    b, n = 8, 2
    batches = []
    for _ in range(3):
        q = torch.rand(b, 40, generator=g, dtype=torch.float64) * 3
        d = torch.rand(b * n, 40, generator=g, dtype=torch.float64) * 3
        d[torch.arange(b) * n] += 0.6 * q  # positives are related to their query, but noisily
        scores, target = losses.contrastive_scores(q, d, n)
        batches.append((scores, target, None))
    assert float(batches[0][0].mean()) > 20  # large scores, as the bundled model's
    total = lambda tau: sum(_scale_gradient(s, t, tau) for s, t, _ in batches)  # noqa: E731
    assert total(1.0) > 0.05  # tau = 1: shrink every score
    tau = losses.calibrate_temperature(batches)
    assert tau > 1.5
    assert abs(total(tau)) < 0.02 * total(1.0)  # calibrated: no pressure on the scale
    assert total(3 * tau) < 0  # hotter than calibrated: scores should grow
    # the loss itself is lowest there (checked against a fine grid)
    grid = np.exp(np.linspace(np.log(0.5), np.log(50), 2000))
    vals = [sum(float(torch.nn.functional.cross_entropy(s / t, tt)) for s, tt, _ in batches) for t in grid]
    assert tau == pytest.approx(grid[int(np.argmin(vals))], rel=0.01)
    # the contrastive loss applies it: contrastive(q, d, n, temperature=tau) == CE(scores / tau)
    q = torch.rand(b, 40, generator=g, dtype=torch.float64)
    d = torch.rand(b * n, 40, generator=g, dtype=torch.float64)
    s, t = losses.contrastive_scores(q, d, n)
    assert float(losses.contrastive(q, d, n, temperature=2.5)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(s / 2.5, t)), rel=1e-12
    )


def test_false_negative_mask_removes_exactly_the_relevant_in_batch_pairs() -> None:
    # three queries, positive + 1 negative each; q0 and q2 share the positive dA; q1's judged
    # documents include q0's hard negative dC; q2 also finds dB (q1's positive) relevant
    qids = ["q0", "q1", "q2"]
    docs = ["dA", "dC", "dB", "dD", "dA", "dE"]
    relevant = {"q0": {"dA"}, "q1": {"dB", "dC"}, "q2": {"dA", "dB"}}
    m = losses.false_negative_mask(qids, docs, relevant, 2)
    want = {(0, 4), (1, 1), (2, 0), (2, 2)}  # (query row, document column)
    assert {tuple(x) for x in torch.nonzero(m).tolist()} == want
    assert not any(m[i, i * 2] for i in range(3))  # never the target
    # the masked loss equals the cross-entropy over the unmasked columns only (numpy reference)
    rng = np.random.default_rng(0)
    q, d = rng.random((3, 30)), rng.random((6, 30))
    s = q @ d.T / 2.0
    ref = []
    for i in range(3):
        keep = [j for j in range(6) if (i, j) not in want]
        row = s[i, keep]
        ref.append(np.log(np.exp(row).sum()) - s[i, 2 * i])
    got = losses.contrastive(torch.tensor(q), torch.tensor(d), 2, temperature=2.0, mask=m)
    assert float(got) == pytest.approx(np.mean(ref), rel=1e-10)
    # without in-batch negatives only the query's own candidates can be masked
    m2 = losses.false_negative_mask(qids, docs, relevant, 2, in_batch=False)
    assert m2.shape == (3, 2) and not m2.any()
    m3 = losses.false_negative_mask(["q1"], ["dB", "dC"], relevant, 2, in_batch=False)
    assert m3.tolist() == [[False, True]]


def test_document_regularizer_averages_positives_and_negatives() -> None:
    rng = np.random.default_rng(3)
    d = torch.tensor(rng.random((4 * 3, 20)))  # 4 queries, positive + 2 negatives
    pos, neg = d.view(4, 3, 20)[:, 0], d.view(4, 3, 20)[:, 1:].reshape(8, 20)
    want = 0.5 * (float(losses.flops(pos)) + float(losses.flops(neg)))
    assert float(losses.document_regularizer("flops", d, 3)) == pytest.approx(want, rel=1e-12)
    assert float(losses.document_regularizer("flops", d, 1)) == pytest.approx(float(losses.flops(d)))


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
        dev_fraction=0.0,  # no dev set unless a test asks for one (then the best step is the output)
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
    assert all(r["grad_clip"] == 1.0 and r["grad_norm"] > 0 for r in log)  # the pre-clip norm is logged
    assert a["calibration"]["temperature_source"] == "learn"  # log tau trained from the calibrated value
    assert a["temperature"] != a["calibration"]["temperature"] and a["temperature"] > 0
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
    assert [e["step"] for e in r["dev"]] == [0, 1, 2]  # the starting model is evaluated too
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
    with pytest.raises(LsrError, match="not contrastive"):
        train(_cfg(beir, str(tmp_path / "x"), teacher="fusion"))
    with pytest.raises(LsrError, match="temperature must be"):
        train(_cfg(beir, str(tmp_path / "x"), temperature="hot"))
    with pytest.raises(LsrError, match="target_doc_nnz"):
        train(_cfg(beir, str(tmp_path / "x"), target_doc_nnz=-5))
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
    assert main(["train", "--data", beir, "--output", out, "--temperature", "hot"]) == 2
    assert "--temperature must be a number" in capsys.readouterr().err


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


def test_best_checkpoint_is_the_output(beir, tmp_path, monkeypatch) -> None:
    """Dev nDCG@10 per evaluation is scripted (0.3, 0.5, 0.9, 0.4, 0.2 at steps 0..4): the output
    is step 2's weights, kept although keep_checkpoints=1 rotates that checkpoint away."""
    import lsr.training.data as tdata
    from lsr.training import train

    scripted = iter([0.3, 0.5, 0.9, 0.4, 0.2])
    real = tdata.evaluate

    def fake(encoder, corpus, queries, qrels, k=10, show_progress=False):
        res = real(encoder, corpus, queries, qrels, k, show_progress)
        res["ndcg@10"] = next(scripted)
        return res

    monkeypatch.setattr(tdata, "evaluate", fake)
    out = str(tmp_path / "best")
    r = train(_cfg(beir, out, steps=4, dev_split="dev", eval_every=1, checkpoint_every=1, keep_checkpoints=1))
    assert [e["step"] for e in r["dev"]] == [0, 1, 2, 3, 4]
    assert r["best"]["step"] == 2 and r["best"]["ndcg@10"] == 0.9 and r["output_step"] == 2
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == ["step-000004"]
    # the output equals what step 2 produced: rerun 2 steps without dev and compare weights
    two = str(tmp_path / "two")
    train(_cfg(beir, two, steps=4, checkpoint_every=1, keep_checkpoints=4))
    w_out, w2 = _weights(out), _weights(os.path.join(two, "checkpoints", "step-000002"))
    w4 = _weights(os.path.join(two, "checkpoints", "step-000004"))
    assert all(np.array_equal(w_out[k], w2[k]) for k in w2)
    assert any(not np.array_equal(w_out[k], w4[k]) for k in w4)


def test_changed_settings_refuse_to_resume(beir, tmp_path) -> None:
    from lsr.cli.main import main
    from lsr.training import train

    out = str(tmp_path / "run")
    train(_cfg(beir, out, steps=2, checkpoint_every=1))
    os.remove(os.path.join(out, "checkpoints", "step-000002", "trainer_state.pt"))  # "interrupted" at 1
    with pytest.raises(LsrError, match=r"other settings \(lr\)"):
        train(_cfg(beir, out, steps=2, checkpoint_every=1, lr=3e-4))
    r = train(_cfg(beir, out, steps=2, checkpoint_every=1, device="cpu"))  # same settings: resumes
    assert r["resumed_from"].endswith("step-000001")
    r = train(_cfg(beir, out, steps=2, checkpoint_every=1, lr=3e-4, resume=True))  # forced
    assert r["resumed_from"].endswith("step-000002")
    r = train(_cfg(beir, out, steps=3, checkpoint_every=1, lr=3e-4, resume=False))  # start over
    assert r["resumed_from"] is None and r["steps"] == 3
    log = [json.loads(x) for x in open(os.path.join(out, "train_log.jsonl"))]
    assert [x["step"] for x in log] == [1, 2, 3]  # the old run's log was cleared
    args = ["train", "--data", beir, "--output", out, "--steps", "3", "--batch-size", "2", "--lr", "1e-3"]
    assert main(args) == 2  # CLI: one-line error, exit 2


# a collection the bundled model cannot rank: queries use one word family (animals), the relevant
# documents another (colours), linked by a fixed pairing the model has to learn from the train queries
ANIMALS = ["cat", "dog", "horse", "cow", "sheep", "goat", "mouse", "lion", "tiger", "bear", "wolf", "fox"]
COLOURS = [
    "red",
    "blue",
    "green",
    "yellow",
    "purple",
    "orange",
    "pink",
    "brown",
    "black",
    "white",
    "gray",
    "gold",
]


@pytest.fixture
def pairing(tmp_path):
    import itertools

    root = tmp_path / "pairing"
    (root / "qrels").mkdir(parents=True)
    pairs = list(itertools.combinations(range(len(ANIMALS)), 2))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pairs))
    with open(root / "corpus.jsonl", "w") as f:
        for n, (i, j) in enumerate(pairs):
            f.write(
                json.dumps({"_id": f"d{n}", "title": "", "text": f"{COLOURS[i]} and {COLOURS[j]}"}) + "\n"
            )
    with open(root / "queries.jsonl", "w") as f:
        for n, (i, j) in enumerate(pairs):
            f.write(json.dumps({"_id": f"q{n}", "text": f"{ANIMALS[i]} {ANIMALS[j]}"}) + "\n")
    for split, rows in (("train", order[:50]), ("dev", order[50:])):
        with open(root / "qrels" / f"{split}.tsv", "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for n in rows:
                f.write(f"q{n}\td{n}\t1\n")
    return str(root)


def test_short_training_improves_dev_ndcg(pairing, tmp_path) -> None:
    """A short default-recipe run (in-batch negatives: BM25 finds nothing here) lifts dev nDCG@10
    well above the bundled model's, and the output model gives the best dev figure when reloaded."""
    import lsr
    from lsr.training import train
    from lsr.training.data import evaluate, load_train_data

    out = str(tmp_path / "m")
    r = train(
        _cfg(
            pairing,
            out,
            negatives="none",
            n_negatives=0,
            steps=30,
            batch_size=8,
            lr=5e-4,
            eval_every=10,
            checkpoint_every=30,
            dev_split="dev",
            dev_candidates=0,  # the whole corpus: BM25 finds nothing here
        )
    )
    start, best = r["dev"][0]["ndcg@10"], r["best"]["ndcg@10"]
    assert start < 0.05 and best > start + 0.1, (start, best)  # measured: 0.018 -> 0.161
    data = load_train_data(pairing, "train", "dev")
    again = evaluate(lsr.load_encoder(out), data.corpus, data.dev_queries, data.dev_qrels)
    assert again["ndcg@10"] == pytest.approx(best, abs=1e-6)


@pytest.mark.system  # compiles ranx's fusion cold (23 s of a fresh default tier) and trains twice
def test_fusion_teacher_equals_the_harness_min_max_fusion(beir, tmp_path) -> None:
    """``--teacher fusion``: BM25 + the starting model, min-max normalised over each system's top-k
    and summed, equals the eval harness's ranx fusion for documents both systems retrieved; every
    (query, positive) pair gets a score; margin_mse and kl train from it."""
    import lsr
    from eval.harness import fuse_runs
    from lsr.training import train
    from lsr.training.data import bm25_search, fusion_teacher, load_train_data, search_corpus

    enc = lsr.load_encoder("splade-tiny", doc_max_length=32, query_max_length=16)
    data = load_train_data(beir, "train")
    depth = 3
    teacher = fusion_teacher(enc, data, depth)
    qids = sorted(data.queries)
    texts = [data.queries[q] for q in qids]
    bm = bm25_search(enc, data.corpus, texts, depth)
    model, _, _ = search_corpus(enc, data.corpus, texts, depth)
    runs = [
        {q: list(zip(r.ids, map(float, r.scores), strict=True)) for q, r in zip(qids, res, strict=True)}
        for res in (bm, model)
    ]
    fused = fuse_runs(runs, "sum", "min-max")
    checked = 0
    for q in qids:
        both = set(dict(runs[0][q])) & set(dict(runs[1][q]))
        for d, s in fused[q]:
            if d in both:
                assert teacher[q][d] == pytest.approx(s, abs=1e-5)
                checked += 1
        assert all(p in teacher[q] for p in data.relevant[q])
    assert checked >= 4
    for loss in ("margin_mse", "kl"):
        r = train(
            _cfg(
                beir,
                str(tmp_path / loss),
                loss=loss,
                teacher="fusion",
                steps=2,
                n_negatives=2,
                negatives_depth=5,
            )
        )
        assert np.isfinite(r["last"]["rank_loss"]) and r["calibration"]["teacher_scale"] > 0
        assert os.path.isfile(tmp_path / loss / "teacher.json")


def test_embedding_lr_scale_freezes_the_tied_embedding(beir, tmp_path) -> None:
    """``embedding_lr_scale=0`` leaves the tied input embedding / vocabulary decoder as it was while
    the rest of the model trains; 0.1 moves it, less than the full rate does."""
    from lsr.training import train

    start = _weights(str(__import__("lsr").encoders.base.BUNDLED_MODELS["splade-tiny"]))
    key = next(k for k in start if k.endswith("word_embeddings.weight"))
    moved = {}
    for scale in (0.0, 0.1, 1.0):
        out = str(tmp_path / f"e{scale}")
        train(_cfg(beir, out, steps=2, embedding_lr_scale=scale, lr=1e-3))
        w = _weights(out)
        moved[scale] = float(np.abs(w[key] - start[key]).max())
        assert any(not np.array_equal(w[k], start[k]) for k in w if k != key and k in start)
    assert moved[0.0] == 0.0 and 0 < moved[0.1] < moved[1.0]
