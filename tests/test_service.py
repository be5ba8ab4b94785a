"""The HTTP service through FastAPI's TestClient, and `lsr serve` as a real process."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

import lsr
from lsr.index import build_index, open_index
from lsr.service.app import create_app
from lsr.service.settings import Settings

from conftest import SCIFACT

N_DOCS = 80


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("svc")
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(N_DOCS)]
    (d / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    return build_index(d / "corpus.jsonl", d / "ix", encoder=lsr.load_encoder("splade-tiny"))


@pytest.fixture(scope="module")
def vector_index_dir(tmp_path_factory):
    from conftest import random_collection, vocab_of

    d = tmp_path_factory.mktemp("svcvec")
    return build_index(random_collection(200, 30, 1), d / "ix", vocab=vocab_of(30))


@pytest.fixture(scope="module")
def client(index_dir):
    with TestClient(create_app(Settings(index=index_dir, max_body_bytes=20_000))) as c:
        yield c


def test_health_ready_page(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {
        "status": "ready",
        "methods": ["exact", "maxscore", "bmp", "seismic"],
    }
    page = client.get("/")
    assert page.status_code == 200 and "lsr search" in page.text
    assert client.get("/docs").status_code == 200
    assert "/search" in client.get("/openapi.json").json()["paths"]


def test_search_text_equals_python_api(client, index_dir):
    idx = open_index(index_dir)
    q = "vitamin d deficiency and bone fractures"
    want = idx.search([q], k=5)[0]
    r = client.post("/search", json={"query": q, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [h["id"] for h in body["hits"]] == want.ids
    np.testing.assert_allclose([h["score"] for h in body["hits"]], want.scores, rtol=1e-6)
    assert body["method"] == "exact" and body["took_ms"] > 0
    first = idx.document(int(want.docs[0]))
    assert body["hits"][0]["title"] == first["title"] and first["text"].startswith(
        body["hits"][0]["snippet"].rstrip(" …")
    )


def test_every_method_over_http(client, index_dir):
    """The safe methods answer exactly like exact search; parameters reach the kernels and bad ones
    are a 400 naming the problem."""
    q = "vitamin d deficiency and bone fractures"
    base = client.post("/search", json={"query": q, "k": 10}).json()["hits"]
    for method, params in (("maxscore", {}), ("bmp", {}), ("bmp", {"alpha": 1.0, "beta": 1.0})):
        r = client.post("/search", json={"query": q, "k": 10, "method": method, "params": params})
        assert r.status_code == 200, r.text
        assert r.json()["hits"] == base and r.json()["method"] == method
    r = client.post("/search", json={"query": q, "k": 10, "method": "seismic", "params": {"query_cut": 50}})
    assert r.status_code == 200 and len({h["id"] for h in r.json()["hits"]} & {h["id"] for h in base}) >= 7
    r = client.post(
        "/search/batch", json={"queries": [q, q], "k": 3, "method": "bmp", "params": {"alpha": 0.9}}
    )
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    for body, msg in (
        ({"query": q, "method": "bmp", "params": {"alpha": 7}}, "alpha must be in"),
        ({"query": q, "method": "seismic", "params": {"nope": 1}}, "no parameter nope"),
    ):
        r = client.post("/search", json=body)
        assert r.status_code == 400 and msg in r.json()["detail"]


def test_search_vector_batch_encode_documents(client, index_dir):
    idx = open_index(index_dir)
    vec = {"vitamin": 1.5, "bone": 1.0, "notatoken###": 2.0}
    r = client.post("/search", json={"query": {"vector": vec}, "k": 3}).json()
    want = idx.search([vec], k=3)[0]
    assert [h["id"] for h in r["hits"]] == want.ids and r["unknown_tokens"] == 1
    b = client.post("/search/batch", json={"queries": ["cancer cells", {"vector": vec}], "k": 3}).json()
    assert len(b["results"]) == 2 and [h["id"] for h in b["results"][1]["hits"]] == want.ids
    assert [h["id"] for h in b["results"][0]["hits"]] == idx.search(["cancer cells"], k=3)[0].ids
    e = client.post("/encode", json={"text": "vitamin d", "top": 5}).json()
    assert len(e["top_terms"]) == 5 and e["nnz"] == len(e["vector"]) and "vitamin" in e["vector"]
    weights = [t["weight"] for t in e["top_terms"]]
    assert weights == sorted(weights, reverse=True)
    doc_id = idx.doc_id(3)
    d = client.get(f"/documents/{doc_id}").json()
    assert d == idx.document(3) and d["text"]
    assert client.get("/documents/no-such-doc").status_code == 404


@pytest.mark.parametrize(
    "body, status",
    [
        ({"query": "x", "k": 0}, 422),
        ({"query": "x", "k": 1001}, 422),
        ({"query": "x", "k": "ten"}, 422),
        ({"query": ""}, 422),
        ({"query": "   "}, 422),
        ({"query": "x" * 3000}, 422),
        ({"query": {"vector": {}}}, 422),
        ({"query": {"vector": {"a": -1}}}, 400),
        ({"query": {"vector": {"a": "x"}}}, 422),
        ({"query": 5}, 422),
        ({}, 422),
        ({"query": "x", "method": "nope"}, 400),
        ({"query": "x", "params": {"bogus": 1}}, 400),
        ({"query": "x", "extra": 1}, 422),
        ({"query": "y" * 25_000}, 413),
    ],
)
def test_bad_requests_are_4xx(client, body, status):
    r = client.post("/search", json=body)
    assert r.status_code == status, r.text
    assert "detail" in r.json()


def test_malformed_json_and_batch_limits(client):
    r = client.post("/search", content=b'{"query": ', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert client.post("/search/batch", json={"queries": []}).status_code == 422
    assert client.post("/search/batch", json={"queries": ["a"] * 300}).status_code == 422
    assert client.post("/encode", json={"text": "a", "top": 0}).status_code == 422


def test_metrics_count_requests(client):
    client.post("/search", json={"query": "heart disease"})
    client.post("/search", json={"query": "x", "k": 0})
    text = client.get("/metrics").text
    assert 'lsr_http_requests_total{method="POST",route="/search",status="200"}' in text
    assert 'lsr_http_errors_total{route="/search",status="422"}' in text
    assert 'lsr_search_seconds_bucket{method="exact",le="+Inf"}' in text


def test_api_key_and_vector_only_index(index_dir, vector_index_dir):
    with TestClient(create_app(Settings(index=index_dir, api_key="s3cret", warmup=False))) as c:
        assert c.post("/search", json={"query": "x"}).status_code == 401
        assert c.post("/search", json={"query": "x"}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200
    with TestClient(create_app(Settings(index=vector_index_dir))) as c:
        assert c.post("/search", json={"query": "text"}).status_code == 400
        r = c.post("/search", json={"query": {"vector": {"t1": 1.0}}, "k": 3}).json()
        assert len(r["hits"]) == 3 and "title" not in r["hits"][0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.system  # a served process
def test_lsr_serve_real_process(index_dir):
    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "lsr")
    proc = subprocess.Popen(
        [exe, "serve", "--index", str(index_dir), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.5)
        else:
            pytest.fail("server did not become ready")
        r = httpx.post(url + "/search", json={"query": "blood pressure", "k": 4}, timeout=30)
        assert r.status_code == 200 and len(r.json()["hits"]) == 4
        assert httpx.post(url + "/search", json={"query": "x", "k": -1}, timeout=30).status_code == 422
    finally:
        proc.terminate()
        proc.wait(timeout=30)
