"""The living index over HTTP: writes (403 unless LSR_WRITABLE=1 and the API key), filters,
generation / segments / pending merges on /ready and /metrics."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import lsr
from lsr.index import build_index, open_index
from lsr.service.app import create_app
from lsr.service.settings import Settings

from conftest import random_collection, vocab_of

KEY = {"X-API-Key": "k"}


@pytest.fixture
def vec_dir(tmp_path):
    return build_index(random_collection(60, 30, 1), tmp_path / "ix", vocab=vocab_of(30), methods=["exact"])


def test_writes_filters_and_status(vec_dir):
    settings = Settings(index=vec_dir, writable=True, api_key="k", warmup=False)
    with TestClient(create_app(settings)) as c:
        body = {"documents": [{"id": "n1", "vector": {"t1": 50.0}, "metadata": {"lang": "en"}, "title": "T"}]}
        assert c.post("/documents", json=body).status_code == 403  # no key
        assert c.post("/documents", json=body, headers={"X-API-Key": "bad"}).status_code == 403
        r = c.post("/documents", json=body, headers=KEY)
        assert r.status_code == 200 and r.json() == {
            "generation": 1, "added": 1, "deleted": 0, "not_found": 0, "segments": 2,
        }  # fmt: skip
        q = {"query": {"vector": {"t1": 1.0}}, "k": 3}
        hits = c.post("/search", json=q, headers=KEY).json()["hits"]
        assert hits[0]["id"] == "n1" and hits[0]["title"] == "T"
        f = c.post("/search", json={**q, "filter": {"lang": "en"}}, headers=KEY).json()["hits"]
        assert [h["id"] for h in f] == ["n1"]
        batch = {"queries": [{"vector": {"t1": 1.0}}] * 2, "k": 3, "filter": {"not": {"lang": "en"}}}
        res = c.post("/search/batch", json=batch, headers=KEY).json()["results"]
        assert all("n1" not in [h["id"] for h in r["hits"]] and len(r["hits"]) == 3 for r in res)
        bad = c.post("/search", json={**q, "filter": {"nope": 1}}, headers=KEY)
        assert bad.status_code == 400 and "unknown metadata field 'nope'" in bad.json()["detail"]
        # bad writes: a clear 4xx, nothing applied
        for docs, code in (
            ([{"id": "a", "vector": {"t1": 1.0}}, {"id": "a", "vector": {"t2": 1.0}}], 400),
            ([{"id": "b", "vector": {"t1": 1.0}, "metadata": {"lang": 3}}], 400),
            ([{"id": "c", "vector": {"t1": 1.0}, "text": "both"}], 422),
            ([{"id": "d", "text": "no encoder"}], 400),
        ):
            r = c.post("/documents", json={"documents": docs}, headers=KEY)
            assert r.status_code == code, (docs, r.text)
        assert c.get("/ready").json()["generation"] == 1
        r = c.delete("/documents/n1", headers=KEY)
        assert r.json()["deleted"] == 1 and r.json()["generation"] == 2
        assert c.delete("/documents/nope", headers=KEY).json()["not_found"] == 1
        assert c.get("/documents/n1", headers=KEY).status_code == 404
        # the segment of n1 is all deleted: the background merge drops it (generation 3)
        merger = c.app.state.lsr.merger
        if merger._thread is not None:
            merger._thread.join(30)
        ready = c.get("/ready").json()
        assert ready["generation"] == 3 and ready["segments"] == 1 and ready["pending_merges"] == 0
        c.post("/documents", json={"documents": [{"id": "0", "vector": {"t2": 1.0}}]}, headers=KEY)
        r = c.post("/admin/merge", json={"max_segments": 1}, headers=KEY)  # update of "0" expunged
        assert r.status_code == 200 and r.json()["segments"] == 1 and r.json()["generation"] == 5
        m = c.get("/metrics").text
        assert (
            "lsr_index_generation 5" in m
            and "lsr_index_segments 1" in m
            and "lsr_index_live_documents 60" in m
        )
    assert open_index(vec_dir).generation == 5  # durable, and the lock released at shutdown


def test_read_only_service_refuses_writes(vec_dir):
    with TestClient(create_app(Settings(index=vec_dir, warmup=False))) as c:
        r = c.post("/documents", json={"documents": [{"id": "x", "vector": {"t1": 1.0}}]})
        assert r.status_code == 403 and "LSR_WRITABLE" in r.json()["detail"]
        assert c.delete("/documents/0").status_code == 403
        assert c.post("/admin/merge").status_code == 403
        assert c.get("/ready").json() == {
            "status": "ready",
            "methods": ["exact"],
            "encoder": False,
        }  # plain index
        r = c.post("/search", json={"query": {"vector": {"t1": 1.0}}, "filter": {"lang": "en"}})
        assert r.status_code == 400 and "unknown metadata field" in r.json()["detail"]
    assert type(open_index(vec_dir)).__name__ == "Index"


def test_text_documents_are_encoded_with_the_recorded_encoder(tmp_path):
    enc = lsr.load_encoder("splade-tiny")
    path = build_index([{"a": 1.0}], tmp_path / "ix", vocab=enc.vocab, methods=["exact"], ids=["seed"])
    # record the encoder the way `lsr index --model` does, so the service loads it
    import json
    import os

    mpath = os.path.join(path, "manifest.json")
    m = json.load(open(mpath))
    m["encoder"] = enc.config()
    json.dump(m, open(mpath, "w"))
    with TestClient(create_app(Settings(index=path, writable=True, warmup=False))) as c:
        docs = [
            {"id": "b", "title": "Birds", "text": "birds sing in the morning", "metadata": {"kind": "bird"}},
            {"id": "c", "text": "cats sleep all day", "metadata": {"kind": "cat"}},
        ]
        assert c.post("/documents", json={"documents": docs}).json()["added"] == 2
        hits = c.post("/search", json={"query": "singing birds", "k": 2, "filter": {"kind": "bird"}}).json()[
            "hits"
        ]
        assert [h["id"] for h in hits] == ["b"] and hits[0]["title"] == "Birds"


def test_add_texts_uses_the_recorded_encoder(tmp_path):
    import json
    import os

    enc = lsr.load_encoder("splade-tiny")
    path = build_index([{"a": 1.0}], tmp_path / "ix", vocab=enc.vocab, methods=["exact"], ids=["seed"])
    mpath = os.path.join(path, "manifest.json")
    m = json.load(open(mpath))
    m["encoder"] = enc.config()
    json.dump(m, open(mpath, "w"))
    ix = open_index(path, writable=True)
    assert (
        ix.add_texts(
            ["birds sing", "cats sleep"], ids=["b", "c"], metadata=[{"k": "bird"}, None], titles=["B", ""]
        )
        == 2
    )
    ix.commit()
    r = ix.search(["birds"], k=1)[0]
    assert r.ids == ["b"] and ix.document(int(r.docs[0])) == {
        "id": "b",
        "title": "B",
        "text": "birds sing",
        "metadata": {"k": "bird"},
    }


@pytest.mark.system  # fuzzing, like the schemathesis run: CI runs it after the default tier
def test_fuzzed_writes_and_filters_never_get_a_server_error(vec_dir):
    """The write routes and filters from the OpenAPI schema (schemathesis): 4xx for bad input, never 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    app = create_app(Settings(index=vec_dir, writable=True, warmup=False))
    # schemathesis runs the app's lifespan itself (one writer) and keeps it for the process
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = [op.ok() for op in schema.get_all_operations()]
    ops = [op for op in ops if op.path in ("/documents", "/documents/{doc_id}", "/admin/merge", "/search")]
    assert len(ops) >= 4
    for op in ops:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def check(case):
            response = case.call()
            assert response.status_code < 500, (case.path, case.body, response.text[:300])

        check()
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # the writer's lock is released
    assert open_index(vec_dir).n_docs >= 1  # the index still opens (as a living one if a write landed)
