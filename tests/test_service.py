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
        "encoder": True,
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


# -- issue 12: nothing a client sends can crash the service or reach past the API ----------------------

VEC = {"query": {"vector": {"vitamin": 1.5, "bone": 1.0}}}


@pytest.mark.parametrize(
    "params, name",
    [
        ({"k": 5}, "k"),  # was a 500: got multiple values for keyword 'k'
        ({"method": "bmp"}, "method"),  # was a 500 too
        ({"threads": 1_000_000}, "threads"),  # was accepted: a client set the server's threads
        ({"encoder": "/some/path"}, "encoder"),  # was accepted: a client loaded an encoder
        ({"force": True}, "force"),  # was accepted: the encoder-mismatch override
        ({"nope": 1, "alpha": 0.5}, "nope"),
    ],
)
def test_params_only_a_methods_own(client, params, name):
    """Only a method's own search parameters may come from a client; anything else is a 400 that names
    the parameter and the allowed ones, on /search and /search/batch, for every method."""
    for method, allowed in (("bmp", "alpha, beta"), ("exact", "none"), ("seismic", "query_cut, heap_factor")):
        if method != "bmp" and "alpha" in params:
            continue
        for path, body in (("/search", VEC), ("/search/batch", {"queries": [VEC["query"]]})):
            r = client.post(path, json={**body, "method": method, "params": params})
            assert r.status_code == 400, (path, method, r.text)
            detail = r.json()["detail"]
            assert f"no parameter {name}" in detail and f"its parameters: {allowed}" in detail, detail


@pytest.mark.parametrize(
    "method, raw, ok",
    [
        ("bmp", '{"alpha": 0}', False),
        ("bmp", '{"alpha": 1.5}', False),
        ("bmp", '{"beta": NaN}', False),
        ("bmp", '{"alpha": 1e-6, "beta": 1}', True),
        ("seismic", '{"query_cut": 0}', False),
        ("seismic", '{"query_cut": 1025}', False),
        ("seismic", '{"query_cut": Infinity}', False),  # was a 500: int(inf) before the bounds check
        ("seismic", '{"query_cut": -Infinity}', False),
        ("seismic", '{"query_cut": NaN}', False),  # was a 500: int(nan)
        ("seismic", '{"query_cut": 1' + "0" * 400 + "}", False),
        ("seismic", '{"query_cut": 2.5}', False),
        ("seismic", '{"query_cut": "5"}', False),
        ("seismic", '{"heap_factor": true}', False),
        ("seismic", '{"heap_factor": 0}', False),
        ("seismic", '{"heap_factor": 1.5}', False),
        ("seismic", '{"query_cut": 1024, "heap_factor": 1.0}', True),
    ],
)
def test_params_bounded(client, method, raw, ok):
    """Each method parameter is held to the bounds next to the method table (400, never 500)."""
    body = (
        '{"query": {"vector": {"vitamin": 1.0}}, "k": 3, "method": "' + method + '", "params": ' + raw + "}"
    )
    r = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == (200 if ok else 400), r.text
    if not ok:
        assert "parameter" in r.json()["detail"]


def test_index_search_validates_params_the_same_way(index_dir):
    """The Python API checks the same table: no OverflowError/ValueError for inf or nan."""
    from lsr.errors import LsrError

    idx = open_index(index_dir)
    for params in ({"query_cut": float("inf")}, {"query_cut": float("nan")}, {"query_cut": 2000}):
        with pytest.raises(LsrError, match="query_cut must be in"):
            idx.search([{"vitamin": 1.0}], k=3, method="seismic", **params)
    with pytest.raises(LsrError, match="heap_factor must be in"):
        idx.search([{"vitamin": 1.0}], k=3, method="seismic", heap_factor=2.0)


@pytest.mark.parametrize(
    "path, raw",
    [
        ("/search", '{"query": "json \\ud800"}'),
        ("/search", '{"query": {"vector": {"bone\\udfff": 1.0}}}'),
        ("/search/batch", '{"queries": ["ok", "json \\ud800"]}'),
        ("/encode", '{"text": "json \\ud800"}'),
        ("/encode", '{"text": "\\udc00", "kind": "document"}'),
    ],
)
def test_lone_surrogates_are_422(client, path, raw):
    """A lone surrogate cannot be UTF-8: 422 (was a 500: TypeError in the tokenizer)."""
    r = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "surrogate" in r.text


@pytest.mark.parametrize(
    "raw, status",
    [
        ('{"vitamin": 3e38, "bone": 3e38}', 422),  # was 200 with "score": null
        ('{"vitamin": 10000.0001}', 422),
        ('{"vitamin": Infinity}', 422),
        ('{"vitamin": NaN}', 422),
        ('{"vitamin": 1e308, "bone": 1e308}', 422),
        ('{"vitamin": 10000, "bone": 10000}', 200),
    ],
)
def test_query_weights_bounded(client, raw, status):
    r = client.post(
        "/search",
        content='{"query": {"vector": ' + raw + '}, "k": 5}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    if status == 422:
        assert "LSR_MAX_QUERY_WEIGHT" in r.json()["detail"]
    else:
        scores = [h["score"] for h in r.json()["hits"]]
        assert scores and all(isinstance(s, float) and np.isfinite(s) for s in scores)


def test_query_weight_bound_is_a_setting_and_scores_stay_finite(tmp_path):
    """LSR_MAX_QUERY_WEIGHT is configurable, and an index whose impacts overflow float32 even with
    bounded query weights answers 422, never a null score."""
    import scipy.sparse as sp

    from conftest import vocab_of

    m = sp.csr_matrix(np.array([[3e38, 3e38, 0], [1.0, 0, 1.0]], dtype=np.float32))
    ix = build_index(m, tmp_path / "ix", vocab=vocab_of(3), methods=["exact"])
    with TestClient(create_app(Settings(index=ix, max_query_weight=2, warmup=False))) as c:
        r = c.post("/search", json={"query": {"vector": {"t2": 3.0}}})
        assert r.status_code == 422 and "<= 2 " in r.json()["detail"]
        assert c.post("/search", json={"query": {"vector": {"t2": 2.0}}}).status_code == 200
        r = c.post("/search", json={"query": {"vector": {"t0": 1.0, "t1": 1.0}}})
        assert r.status_code == 422 and "not finite" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    "path, body",
    [
        ("/search", {"query": "x", "k": True}),  # was accepted as k=1
        ("/search", {"query": "x", "k": "5"}),  # was accepted as k=5
        ("/search", {"query": "x", "k": 5.0}),
        ("/search", {"query": "x", "method": 1}),
        ("/search", {"query": {"vector": {"vitamin": True}}}),
        ("/search", {"query": {"vector": {"vitamin": "1.0"}}}),
        ("/search/batch", {"queries": ["x"], "k": True}),
        ("/search/batch", {"queries": ["x"], "k": "5"}),
        ("/encode", {"text": "x", "top": True}),
        ("/encode", {"text": "x", "top": "5"}),
        ("/encode", {"text": 5}),
    ],
)
def test_strict_types(client, path, body):
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text


def test_metrics_count_every_status_from_every_layer(index_dir):
    """/metrics counts 500s (unhandled exceptions), 413s and 422s from the body guard, 401s from
    the key check and 404s, by route and status (500s and 413s were not counted)."""
    app = create_app(Settings(index=index_dir, api_key="k", warmup=False, max_body_bytes=2048))

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("boom")

    key = {"X-API-Key": "k"}
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/boom").status_code == 500
        assert c.post("/search", json={"query": "y" * 5000}, headers=key).status_code == 413
        big = {"content-type": "application/json", "x-api-key": "k"}
        assert c.post("/search", content=b'{"query": "\xff"}', headers=big).status_code == 422
        assert c.post("/search", json={"query": "x"}).status_code == 401
        assert c.post("/search", json={"query": "x", "k": 0}, headers=key).status_code == 422
        assert c.get("/nowhere").status_code == 404
        assert c.post("/search", json={"query": "x"}, headers=key).status_code == 200
        text = c.get("/metrics").text
    for route, status, n in (
        ("/boom", 500, 1),
        ("/search", 413, 1),
        ("/search", 422, 2),
        ("/search", 401, 1),
        ("/search", 200, 1),
    ):
        method = "GET" if route == "/boom" else "POST"
        assert f'lsr_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}' in text
        assert f'lsr_http_errors_total{{route="{route}",status="{status}"}}' in text or status < 400
    assert 'lsr_http_requests_total{method="GET",route="unmatched",status="404"} 1' in text


def test_docs_assets_are_local(client):
    """/docs loads Swagger UI from this server (the swagger-ui-py package), not from a CDN."""
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page.text) + re.findall(
        r"url: ?['\"]([^'\"]+)['\"]", page.text
    )
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls) and any(u.endswith(".css") for u in urls)
    for u in urls:
        assert u.startswith("/"), f"{u} is not served by this server"
        r = client.get(u)
        assert r.status_code == 200 and len(r.content) > 0, u
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN


ODD_IDS = ["a/b", "a/b/c", "/lead", "50%", "%2F", "with space", "naïve", "日本/語", "plain", "q?x#y"]


@pytest.fixture(scope="module")
def odd_ids_index(tmp_path_factory):
    from conftest import random_collection, vocab_of

    d = tmp_path_factory.mktemp("oddids")
    return build_index(
        random_collection(len(ODD_IDS), 20, 3, density=0.3), d / "ix", vocab=vocab_of(20), ids=ODD_IDS
    )


def test_document_ids_with_slashes_percent_spaces_unicode(odd_ids_index):
    """Every id is fetchable from /documents/{id}, percent-encoded (ids with / were a generic 404)."""
    from urllib.parse import quote

    with TestClient(create_app(Settings(index=odd_ids_index, warmup=False))) as c:
        for doc_id in ODD_IDS:
            if doc_id == "%2F":  # Starlette's TestClient unquotes twice; test_service_wire.py has it
                continue
            r = c.get("/documents/" + quote(doc_id, safe=""))
            assert r.status_code == 200 and r.json()["id"] == doc_id, (doc_id, r.text)
        assert c.get("/documents/" + quote("a/b/", safe="")).status_code == 404


def test_lsr_serve_busy_port_fails_at_once(tmp_path):
    """`lsr serve` on a busy port says so in one line, exit 2, before it opens (or even finds) the
    index: the index here does not exist, so an index error would mean the port was checked late."""
    exe = os.path.join(os.path.dirname(sys.executable), "lsr")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = subprocess.run(
            [exe, "serve", "--index", str(tmp_path / "no-index"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == f"lsr: error: port {port} on 127.0.0.1 is in use"
