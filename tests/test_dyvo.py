"""DyVo (issue #7): entity store, candidate matching, the miner, the DyVo encoder and its training
interface, save/load, and ENT: terms through JSONL, index and search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lsr
from lsr.encoders.dyvo import DyVoEncoder
from lsr.entities import (
    Entity,
    EntityMatcher,
    EntityStore,
    build_entity_store,
    mine_entities,
    name_embeddings,
)
from lsr.errors import LsrError
from lsr.index import build_index, open_index

ENTITIES = [
    Entity("vitamin_d", "vitamin D", ["cholecalciferol", "vit D"]),
    Entity("bone_marrow", "bone marrow"),
    Entity("hiv", "HIV", ["human immunodeficiency virus"], "a retrovirus that causes AIDS"),
    Entity("breast_cancer", "breast cancer", [], "a cancer of the breast tissue"),
    Entity("type_2_diabetes", "type 2 diabetes", ["T2D"]),
    Entity("insulin_resistance", "insulin resistance"),
]
DOCS = [
    "Vitamin D supplementation and bone marrow density in older adults.",
    "HIV infection raises the risk of breast cancer? A cohort study.",
    "Insulin resistance precedes type 2 diabetes by years.",
    "Deep sea fish live in cold water.",
    "Cholecalciferol (vit D) lowers insulin resistence in T2D patients.",
]


@pytest.fixture(scope="module")
def splade():
    return lsr.load_encoder("splade-tiny")


@pytest.fixture(scope="module")
def store(splade):
    emb = name_embeddings(splade.model, splade.tokenizer, [e.name for e in ENTITIES])
    return EntityStore(ENTITIES, emb)


@pytest.fixture(scope="module")
def dyvo(splade, store):
    return DyVoEncoder.from_splade(splade, store, doc_max_length=64, query_max_length=32)


# -- the store ------------------------------------------------------------------------------------
def test_store_round_trip_and_fingerprint(store, tmp_path):
    store.save(tmp_path / "s")
    back = EntityStore.load(tmp_path / "s")
    assert [e.to_json() for e in back.entities] == [e.to_json() for e in store.entities]
    np.testing.assert_array_equal(back.embeddings, store.embeddings)
    assert back.embeddings.dtype == np.float32 and back.fingerprint() == store.fingerprint()
    assert back.position("hiv") == 2
    other = EntityStore(ENTITIES, store.embeddings + 1)
    assert other.fingerprint() != store.fingerprint()
    # a JSONL file with an explicit .npy elsewhere
    np.save(tmp_path / "e.npy", store.embeddings)
    assert len(EntityStore.load(tmp_path / "s" / "entities.jsonl", tmp_path / "e.npy")) == len(ENTITIES)


def _write(tmp_path, lines, rows=None, dim=4):
    d = tmp_path / "bad"
    d.mkdir(exist_ok=True)
    (d / "entities.jsonl").write_text("".join(line + "\n" for line in lines))
    np.save(d / "entity_embeddings.npy", np.ones((len(lines) if rows is None else rows, dim), np.float32))
    return d


@pytest.mark.parametrize(
    "lines,rows,message",
    [
        (
            ['{"id": "a", "name": "alpha"}', '{"id": "b", "name": "beta"}'],
            3,
            "2 entities but 3 embedding rows",
        ),
        (['{"id": "a", "name": "alpha"}', '{"id": "a", "name": "beta"}'], None, "duplicate entity id 'a'"),
        (
            ['{"id": "a", "name": "alpha"}', '{"id": "b", "name": beta}'],
            2,
            "entities.jsonl:2: not valid JSON",
        ),
        (['{"id": "a b", "name": "alpha"}'], None, "without whitespace"),
        (['{"id": "a", "name": "..."}'], None, "at least one word"),
        (['{"id": "a", "name": "alpha", "aliases": "x"}'], None, "aliases must be a list"),
        (['{"id": "a"}'], None, 'needs "id" and "name"'),
        (['{"id": "a", "name": "alpha", "colour": 1}'], None, "unknown field(s) colour"),
    ],
)
def test_store_validation_errors(tmp_path, lines, rows, message):
    with pytest.raises(LsrError, match=None) as e:
        EntityStore.load(_write(tmp_path, lines, rows))
    assert message in str(e.value)


def test_store_array_errors(tmp_path):
    with pytest.raises(LsrError, match="no such entities file"):
        EntityStore.load(tmp_path)
    with pytest.raises(LsrError, match="2-D"):
        EntityStore([Entity("a", "alpha")], np.ones(4, np.float32))
    with pytest.raises(LsrError, match="not finite"):
        EntityStore([Entity("a", "alpha")], np.full((1, 4), np.nan, np.float32))


# -- candidate matching ---------------------------------------------------------------------------
def test_matching_exact_alias_fuzzy_and_no_false_match(store):
    m = EntityMatcher(store)
    assert m.match_ids("Does VITAMIN-D prevent fractures?") == ["vitamin_d"]
    assert m.match_ids("cholecalciferol, also known as vit. D") == ["vitamin_d"]  # aliases
    assert m.match_ids("the human immunodeficiency virus (HIV)") == ["hiv"]
    got = m.match("Breast cancers in women")  # plural: one edit on a word of 7 letters
    assert [(store.entities[c.entity].id, c.source) for c in got] == [("breast_cancer", "fuzzy")]
    assert 0.8 < got[0].quality < 1
    # both fuzzy: the one with fewer edits per character first
    assert m.match_ids("insulin resistence and type 2 diabetis") == ["insulin_resistance", "type_2_diabetes"]
    # no false matches: a part of a name, short words, numbers, other words
    for text in [
        "the bone was broken",
        "marrow",
        "type 2 of it",
        "breast milk",
        "vitamin C",
        "HIVE",
        "",
        "...",
    ]:
        assert m.match_ids(text) == [], text
    # exact beats fuzzy, more mentions first within a kind
    ids = m.match_ids("breast cancers; bone marrow, vitamin D and vitamin D again")
    assert ids == ["vitamin_d", "bone_marrow", "breast_cancer"]
    assert EntityMatcher(store, top_n=1).match_ids("bone marrow and vitamin D, vitamin D") == ["vitamin_d"]
    assert EntityMatcher(store, fuzzy=False).match_ids("Breast cancers") == []


def test_matching_bm25_second_retriever(store):
    pytest.importorskip("bm25s")
    m = EntityMatcher(store, bm25=True, bm25_k=2)
    got = m.match("a retrovirus and AIDS")  # only in HIV's description
    assert [(store.entities[c.entity].id, c.source) for c in got] == [("hiv", "bm25")]
    # name matches come first, BM25 adds the rest
    got = m.match("bone marrow and tissue of the breast")
    assert got[0].source == "exact" and store.entities[got[0].entity].id == "bone_marrow"
    assert "breast_cancer" in [store.entities[c.entity].id for c in got]


def test_matcher_bad_settings(store):
    with pytest.raises(LsrError, match="top_n"):
        EntityMatcher(store, top_n=0)
    with pytest.raises(LsrError, match="max_edits"):
        EntityMatcher(store, max_edits=3)


# -- the miner ------------------------------------------------------------------------------------
CORPUS = [
    "Vitamin D deficiency is common in type 2 diabetes.",
    "Type 2 diabetes patients were screened for vitamin D deficiency and HIV.",
    "We found no link between vitamin D deficiency and bone fractures.",
    "HIV and type 2 diabetes share inflammatory pathways (TNF, IL-6).",
    "IL-6 and TNF levels rise with obesity.",
    "TNF blockers lower IL-6 in arthritis; HIV status was recorded.",
    "Deep sea fish live in cold water.",
    "Cold water coral reefs.",
]


def test_miner_finds_recurring_terms_and_names(splade):
    ents = mine_entities(CORPUS, min_df=3, max_df_fraction=1.0)
    names = {e.name for e in ents}
    assert {"vitamin D deficiency", "type 2 diabetes", "HIV", "TNF", "IL-6"} <= names
    assert "cold water" not in names  # in 2 documents only
    assert "bone fractures" not in names and "deep sea" not in names
    assert "vitamin D" not in names  # always inside "vitamin D deficiency": dominated
    ids = [e.id for e in ents]
    assert "il_6" in ids and len(set(ids)) == len(ids)
    assert len(mine_entities(CORPUS, max_entities=2, min_df=3, max_df_fraction=1.0)) == 2
    store = build_entity_store(CORPUS, splade, min_df=2)
    assert "cold_water" in store.ids
    # embeddings: the mean input word-piece embedding of the name
    e = store.entities[store.position("type_2_diabetes")]
    pieces = splade.tokenizer(e.name, add_special_tokens=False)["input_ids"]
    want = splade.model.get_input_embeddings().weight.detach()[pieces].mean(0).numpy()
    np.testing.assert_allclose(store.embeddings[store.position("type_2_diabetes")], want, rtol=1e-6)
    with pytest.raises(LsrError, match="no recurring terms"):
        build_entity_store(["one text only"], splade, min_df=2)


# -- the encoder ----------------------------------------------------------------------------------
def _dense(batch):
    return batch.to_scipy().toarray()


def test_vocab_and_word_piece_part_equals_splade(dyvo, splade, store):
    V = splade.vocab_size
    assert len(dyvo.vocab) == V + len(store)
    assert dyvo.vocab.tokens[:V] == splade.vocab.tokens
    assert dyvo.vocab.tokens[V:] == [f"ENT:{i}" for i in store.ids]
    got = _dense(dyvo.encode_documents(DOCS))
    short = lsr.load_encoder("splade-tiny", doc_max_length=64)
    want = _dense(short.encode_documents(DOCS))
    np.testing.assert_allclose(got[:, :V], want, atol=1e-5)
    assert (got[:, V:] > 0).any()


def _reference_entity_weights(splade, store, text, max_length):
    """The head formula in plain torch: max_t log1p(relu(h_t . E_e + b_e)), b_e = mean decoder bias of
    the name's word pieces (the untrained head), for the text's candidates."""
    m = splade.model
    enc = splade.tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        h = m.cls.predictions.transform(m.bert(**enc).last_hidden_state)[0]
        bias = (
            m.cls.predictions.bias if m.cls.predictions.bias is not None else m.cls.predictions.decoder.bias
        )
        out = {}
        for eid in EntityMatcher(store).match_ids(text):
            i = store.position(eid)
            pieces = splade.tokenizer(store.entities[i].name, add_special_tokens=False)["input_ids"]
            b = bias[pieces].mean()
            e = torch.from_numpy(store.embeddings[i])
            out[eid] = float(torch.log1p(torch.relu((h @ e + b).max())))
    return out


def test_entity_part_equals_reference(dyvo, splade, store):
    batch = dyvo.encode_documents(DOCS)
    for text, vec in zip(DOCS, batch.to_dicts(), strict=True):
        got = {t[4:]: w for t, w in vec.items() if t.startswith("ENT:")}
        want = {k: v for k, v in _reference_entity_weights(splade, store, text, 64).items() if v > 0}
        assert got.keys() == want.keys(), text
        for k in want:
            assert got[k] == pytest.approx(want[k], abs=1e-5)
    # non-candidates are 0: the deep-sea document mentions no entity
    assert not [t for t in batch.to_dicts()[3] if t.startswith("ENT:")]


def test_forward_train_equals_encode_and_trains_the_head(splade, store):
    enc = DyVoEncoder.from_splade(lsr.load_encoder("splade-tiny"), store, doc_max_length=64)
    dense = enc.forward_train(DOCS, "document")
    assert dense.shape == (len(DOCS), len(enc.vocab)) and dense.dtype == torch.float32
    assert dense.requires_grad and (dense >= 0).all()
    np.testing.assert_allclose(dense.detach().numpy(), _dense(enc.encode_documents(DOCS)), atol=1e-5)
    q = enc.forward_train(["vitamin D and insulin resistance"], "query")
    assert q.shape == (1, len(enc.vocab))
    # one gradient step on "raise the entity weights" changes them
    V = enc.vocab_size
    module = enc.train_module()
    names = {n for n, _ in module.named_parameters()}
    assert (
        "dyvo_head.bias" in names and "dyvo_head.scale" in names and any(n.startswith("mlm.") for n in names)
    )
    opt = torch.optim.SGD(module.parameters(), lr=1e-3)
    before = dense[:, V:].detach().clone()
    loss = -enc.forward_train(DOCS, "document")[:, V:].sum()
    loss.backward()
    assert module.dyvo_head.bias.grad is not None and module.dyvo_head.bias.grad.abs().sum() > 0
    opt.step()
    after = enc.forward_train(DOCS, "document")[:, V:].detach()
    assert (after.sum() > before.sum()) and not torch.allclose(after, before)
    # encoding sees the updated weights (no stale inference caches)
    module.eval()
    np.testing.assert_allclose(
        enc.forward_train(DOCS, "document").detach().numpy(), _dense(enc.encode_documents(DOCS)), atol=1e-5
    )
    with pytest.raises(LsrError, match="what must be"):
        enc.forward_train(DOCS, "doc")


def test_save_load_round_trip(tmp_path, store):
    enc = DyVoEncoder.from_splade(lsr.load_encoder("splade-tiny"), store, doc_max_length=64, entity_top_n=4)
    with torch.no_grad():
        enc.head.bias += 0.25  # a "trained" head must survive the round trip
    enc.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "lsr_encoder.json").read_text())
    assert cfg["kind"] == "dyvo" and cfg["entities"] == store.fingerprint() and cfg["entity_top_n"] == 4
    back = lsr.load_encoder(str(tmp_path / "m"))
    assert isinstance(back, DyVoEncoder) and back.vocab == enc.vocab
    a, b = enc.encode_documents(DOCS), back.encode_documents(DOCS)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-6)
    assert {k: v for k, v in back.config().items() if k not in ("model", "model_path")} == {
        k: v for k, v in enc.config().items() if k not in ("model", "model_path")
    }
    with pytest.raises(LsrError, match="unknown DyVo setting"):
        lsr.load_encoder(str(tmp_path / "m"), pooling_mode="max")
    with pytest.raises(LsrError, match="fingerprint"):
        lsr.load_encoder(str(tmp_path / "m"), entities="0" * 16)
    with pytest.raises(LsrError, match="not a saved DyVo encoder"):
        lsr.load_encoder("splade-tiny", kind="dyvo")


def test_pruning_and_truncation(store, splade):
    enc = DyVoEncoder.from_splade(splade, store, doc_top_k=5, query_max_length=8)
    full = DyVoEncoder.from_splade(splade, store)
    for pruned, whole in zip(
        enc.encode_documents(DOCS).to_dicts(), full.encode_documents(DOCS).to_dicts(), strict=True
    ):
        assert len(pruned) == min(5, len(whole))
        assert sorted(pruned.values()) == sorted(whole.values())[-len(pruned) :]
    # a mention past the query's 8 tokens is no candidate
    late = "one two three four five six seven eight nine vitamin D"
    assert not [t for t in enc.encode_queries([late]).to_dicts()[0] if t.startswith("ENT:")]
    assert [t for t in full.encode_queries([late]).to_dicts()[0] if t.startswith("ENT:")]


def test_ent_terms_through_jsonl_index_and_search(dyvo, tmp_path):
    docs = dyvo.encode_documents(DOCS)
    docs.ids = [f"d{i}" for i in range(len(DOCS))]
    lsr.write_vectors(tmp_path / "v.jsonl", docs)
    first = json.loads((tmp_path / "v.jsonl").read_text().splitlines()[0])
    assert any(t.startswith("ENT:") for t in first["vector"])
    back = lsr.read_vectors(tmp_path / "v.jsonl")
    assert back.to_dicts() == docs.to_dicts()
    idx = open_index(build_index(tmp_path / "v.jsonl", tmp_path / "ix", methods=["exact"]))
    # an entity-only query finds exactly the documents holding that entity, scored by its weight
    dicts = docs.to_dicts()
    holders = {docs.ids[i]: d["ENT:vitamin_d"] for i, d in enumerate(dicts) if "ENT:vitamin_d" in d}
    assert len(holders) == 2
    res = idx.search([{"ENT:vitamin_d": 2.0}], k=10)[0]
    assert sorted(res.ids) == sorted(holders)
    for i, s in zip(res.ids, res.scores, strict=True):
        assert s == pytest.approx(2.0 * holders[i], rel=1e-6)
    # an index built with the encoder answers text queries through the recorded DyVo encoder
    ix2 = open_index(build_index(docs, tmp_path / "ix2", encoder=dyvo, methods=["exact"]))
    assert ix2.encoder_config["kind"] == "dyvo" and ix2.n_terms == len(dyvo.vocab)
    hits = ix2.search(["cholecalciferol and insulin resistance"], k=3, encoder=dyvo)[0]
    assert hits.ids[0] == "d4"


# -- the command line -----------------------------------------------------------------------------
def test_cli_build_dyvo_encode_index_search(tmp_path, capsys):
    from lsr.cli.main import main

    def run(*args, expect=0):
        code = main([str(a) for a in args])
        assert code == expect, f"lsr {' '.join(map(str, args))} exited {code}"

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"_id": f"c{i}", "title": "", "text": t}) + "\n" for i, t in enumerate(CORPUS))
    )
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"_id": "q1", "text": "vitamin D deficiency in type 2 diabetes"}) + "\n")
    ents, model = tmp_path / "ents", tmp_path / "dyvo-model"
    run("entities", "build", "--corpus", corpus, "--output", ents, "--min-df", 2)
    assert "vitamin_d_deficiency" in EntityStore.load(ents).ids
    run("entities", "build", "--corpus", corpus, "--output", ents, expect=2)  # exists: refused
    assert "already exists" in capsys.readouterr().err
    run("entities", "dyvo", "--model", "splade-tiny", "--entities", ents, "--output", model, "--top-n", 8)
    assert lsr.load_encoder(str(model)).config()["entity_top_n"] == 8
    run("entities", "match", "--entities", ents, "Vitamin D deficiency, IL-6")
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"vitamin_d_deficiency", "il_6"} <= {c["id"] for c in out[0]["candidates"]}
    run("encode", "--model", model, "--input", corpus, "--output", tmp_path / "v.jsonl")
    vecs = [json.loads(line)["vector"] for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert any(t.startswith("ENT:") for v in vecs for t in v)
    run("index", "--input", corpus, "--model", model, "--output", tmp_path / "ix", "--methods", "exact")
    run(
        "search",
        "--index",
        tmp_path / "ix",
        "--queries",
        queries,
        "--k",
        3,
        "--output",
        tmp_path / "run.trec",
    )
    first = (tmp_path / "run.trec").read_text().splitlines()[0].split()
    assert first[0] == "q1" and first[2] in ("c0", "c1", "c2")
    run("entities", "build", "--corpus", tmp_path / "nope.jsonl", "--output", tmp_path / "x", expect=2)
    run("entities", "dyvo", "--entities", tmp_path / "nope", "--output", tmp_path / "y", expect=2)


def test_entity_weights_alone_plus_splade_equal_the_full_vectors(dyvo):
    ents = dyvo.encode_entity_weights(DOCS)
    V = dyvo.vocab_size
    assert (ents.indices >= V).all()
    full = _dense(dyvo.encode_documents(DOCS))
    np.testing.assert_allclose(_dense(ents)[:, V:], full[:, V:], atol=1e-6)


def test_word_pieces_come_from_splades_head(store, monkeypatch):
    """DyVo's word-piece weights are computed by SPLADE's head (``SpladeEncoder.project_pool``: the
    tiled projection), not by a copy of it: one call per batch, and with one text per batch (no
    padding) the word-piece part equals SPLADE's vectors bit for bit."""
    from lsr.encoders.splade import SpladeEncoder

    base = lsr.load_encoder("splade-tiny", doc_max_length=64, batch_size=1)
    enc = DyVoEncoder.from_splade(base, store, doc_max_length=64, batch_size=1)
    calls = []
    real = SpladeEncoder.project_pool

    def spy(self, h, lens):
        calls.append(len(lens))
        return real(self, h, lens)

    monkeypatch.setattr(SpladeEncoder, "project_pool", spy)
    got = _dense(enc.encode_documents(DOCS))
    assert calls[-len(DOCS) :] == [1] * len(DOCS)
    calls.clear()
    want = _dense(base.encode_documents(DOCS))
    assert len(calls) == len(DOCS)  # SPLADE itself goes through the same head
    np.testing.assert_array_equal(got[:, : base.vocab_size], want)
