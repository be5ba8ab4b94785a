"""The search, batch search, encode and document endpoints (plain ``def``: run on the thread pool)."""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import FastAPI, HTTPException

from lsr.service import schemas


def _check_k(k: int, state: Any) -> None:
    if not 1 <= k <= state.settings.max_k:
        raise HTTPException(
            status_code=422, detail=f"k must be between 1 and {state.settings.max_k}, got {k}"
        )


def _query_input(q: str | schemas.VectorQuery, state: Any, index: Any) -> Any:
    """One request query -> what Index.search takes: a text or a {token: weight} dict."""
    s = state.settings
    if isinstance(q, str):
        if not q.strip():
            raise HTTPException(status_code=422, detail="query text is empty")
        if len(q) > s.max_query_chars:
            raise HTTPException(status_code=422, detail=f"query longer than {s.max_query_chars} characters")
        if state.encoder is None:
            raise HTTPException(
                status_code=400, detail="this index records no encoder: send {'vector': {...}} queries"
            )
        return q
    if not q.vector:
        raise HTTPException(status_code=422, detail="query vector is empty")
    if len(q.vector) > s.max_query_terms:
        raise HTTPException(status_code=422, detail=f"query vector has more than {s.max_query_terms} terms")
    for token, w in q.vector.items():
        # bounded weights keep float32 scores finite (3e38 + 3e38 is inf; the schema says float)
        if not math.isfinite(w) or w > s.max_query_weight:
            raise HTTPException(
                status_code=422,
                detail=f"weight of {token[:40]!r} must be finite and <= {s.max_query_weight:g} "
                f"(LSR_MAX_QUERY_WEIGHT), got {w!r}",
            )
    return q.vector


def _search(
    queries: list[Any], k: int, method: str, params: dict, state: Any, index: Any, flt: Any = None
) -> list[Any]:
    """Texts and vectors, mixed or not, through the app's :class:`lsr.Retriever`; ``flt``: a
    metadata filter (a living index filters inside its kernels; a plain one has no fields)."""
    # Only the method's own parameters, bounded (the method registry: LsrError -> 400 naming the
    # allowed ones), may come from a client; k, method, threads, encoder, force never do.
    params = index.check_params(method, params)
    if flt and not hasattr(index, "fields"):
        raise HTTPException(
            status_code=400, detail=f"filter: unknown metadata field {next(iter(flt))!r} (fields: none)"
        )
    results = state.retriever.search(queries, k=k, method=method, filter=flt or None, **params)
    for r in results:
        if not all(math.isfinite(x) for x in r.scores):  # a last guard: an index with huge impacts
            raise HTTPException(
                status_code=422, detail="scores overflow float32 (not finite): use smaller query weights"
            )
    return results


def _hits(result: Any, index: Any, snippet_chars: int) -> list[dict]:
    hits = []
    for doc, doc_id, score in zip(result.docs.tolist(), result.ids, result.scores, strict=True):
        hit: dict[str, Any] = {"id": doc_id, "score": score}
        if index.has_store:
            d = index.document(doc)
            hit["title"] = d["title"]
            text = d["text"]
            hit["snippet"] = (
                text if len(text) <= snippet_chars else text[:snippet_chars].rsplit(" ", 1)[0] + " …"
            )
        hits.append(hit)
    return hits


def _response(result: Any, index: Any, state: Any, took_ms: float, method: str) -> dict:
    """The SearchResponse body of one query's result."""
    return {
        "hits": _hits(result, index, state.settings.snippet_chars),
        "took_ms": took_ms,
        "method": method,
        "unknown_tokens": result.unknown_tokens,
    }


def add_routes(app: FastAPI, state: Any, auth: Any, ready_index: Any) -> None:
    @app.post(
        "/search",
        response_model=schemas.SearchResponse,
        response_model_exclude_none=True,
        dependencies=[auth],
    )
    def search(req: schemas.SearchRequest, index: Any = ready_index) -> dict:
        """Top-k documents for one query (text, or a {token: weight} vector)."""
        t0 = time.perf_counter()
        _check_k(req.k, state)
        q = _query_input(req.query, state, index)
        res = _search([q], req.k, req.method, req.params, state, index, req.filter)[0]
        took = time.perf_counter() - t0
        state.metrics.observe_search(req.method, took)
        return _response(res, index, state, took * 1e3, req.method)

    @app.post(
        "/search/batch",
        response_model=schemas.BatchSearchResponse,
        response_model_exclude_none=True,
        dependencies=[auth],
    )
    def search_batch(req: schemas.BatchSearchRequest, index: Any = ready_index) -> dict:
        """Top-k documents for each of many queries, in one call."""
        t0 = time.perf_counter()
        _check_k(req.k, state)
        if not req.queries:
            raise HTTPException(status_code=422, detail="queries is empty")
        if len(req.queries) > state.settings.max_batch:
            raise HTTPException(
                status_code=422, detail=f"at most {state.settings.max_batch} queries per batch"
            )
        qs = [_query_input(q, state, index) for q in req.queries]
        results = _search(qs, req.k, req.method, req.params, state, index, req.filter)
        took = time.perf_counter() - t0
        for _ in results:
            state.metrics.observe_search(req.method, took / len(results))
        out = [_response(r, index, state, took * 1e3 / len(results), req.method) for r in results]
        return {"results": out, "took_ms": took * 1e3, "method": req.method}

    @app.post("/encode", response_model=schemas.EncodeResponse, dependencies=[auth])
    def encode(req: schemas.EncodeRequest, index: Any = ready_index) -> dict:
        """The sparse vector of a text, with its heaviest terms (what SPLADE expanded it to)."""
        t0 = time.perf_counter()
        if state.encoder is None:
            raise HTTPException(status_code=400, detail="this index records no encoder")
        if not 1 <= req.top <= 1000:
            raise HTTPException(status_code=422, detail="top must be between 1 and 1000")
        if len(req.text) > state.settings.max_query_chars:
            raise HTTPException(
                status_code=422, detail=f"text longer than {state.settings.max_query_chars} characters"
            )
        # queries through the retriever: inference-free models get this index's IDF
        fn = (
            state.retriever.query_encoder.encode_queries
            if req.kind == "query"
            else state.encoder.encode_documents
        )
        vec = fn([req.text]).to_dicts()[0]
        top = sorted(vec.items(), key=lambda kv: (-kv[1], kv[0]))[: req.top]
        return {
            "vector": vec,
            "top_terms": [{"token": t, "weight": w} for t, w in top],
            "nnz": len(vec),
            "took_ms": (time.perf_counter() - t0) * 1e3,
        }

    @app.get(
        "/documents/{doc_id:path}",
        response_model=schemas.Document,
        responses={404: {"model": schemas.Error}},
        dependencies=[auth],
    )
    def document(doc_id: str, index: Any = ready_index) -> dict:
        """A stored document by its id, percent-encoded (``/``, ``%``, spaces and any Unicode are fine:
        ``a/b c`` is ``/documents/a%2Fb%20c``); title and text are empty when the index keeps no text."""
        doc = index.lookup(doc_id)
        if doc is None:
            raise HTTPException(status_code=404, detail=f"no document {doc_id!r}")
        return index.document(doc)
