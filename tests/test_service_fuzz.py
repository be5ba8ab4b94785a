"""Fuzz the HTTP API from its own OpenAPI schema (schemathesis): no request may get a 5xx."""

from __future__ import annotations

import gzip

import pytest

from conftest import SCIFACT

pytestmark = pytest.mark.system  # schemathesis fuzzing

schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

import lsr  # noqa: E402
from lsr.index import build_index  # noqa: E402
from lsr.service.app import create_app  # noqa: E402
from lsr.service.settings import Settings  # noqa: E402


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        (d / "corpus.jsonl").write_text("".join(next(f) for _ in range(40)), encoding="utf-8")
    ix = build_index(d / "corpus.jsonl", d / "ix", encoder=lsr.load_encoder("splade-tiny"))
    app = create_app(Settings(index=ix, max_query_chars=300))
    with TestClient(app):  # runs the lifespan: index and encoder loaded, kernels warm
        yield app


def test_no_server_errors(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/search", "/search/batch", "/encode", "/documents/{doc_id}"}
    failures = []
    statuses: set[int] = set()
    for op in operations:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def check(case):
            response = case.call()
            statuses.add(response.status_code)
            if response.status_code >= 500:
                failures.append((case.path, case.body, response.status_code, response.text[:200]))
            assert response.status_code < 500, (case.path, case.body, response.text[:300])

        check()
    assert not failures
    assert 200 in statuses and 422 in statuses, statuses  # the fuzz reached both valid and invalid requests
