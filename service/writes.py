"""Write endpoints of a living index: ``POST /documents``, ``DELETE /documents/{id}``, ``POST /admin/merge``.

Writes are served only when the service runs with ``LSR_WRITABLE=1`` (the index is then opened as
its one writer) and, when ``LSR_API_KEY`` is set, carry it in ``X-API-Key``; any other write gets
403. Each write request is committed before it is answered: a 200 means the change is durable
(see :mod:`lsr.index.segments`) and visible to every search that starts after it. Searches never
wait for writes: they run on the generation current when they start. After a write, merges the
policy asks for run on one background thread (writes wait for a running merge; searches do not).
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from lsr.errors import LsrError


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, description="external id; an id the index holds is replaced")
    text: str | None = Field(None, description="text, encoded with the index's encoder")
    vector: dict[str, float] | None = Field(None, description="{token: weight} (instead of text)")
    title: str | None = None
    metadata: dict[str, Any] | None = Field(None, description="keyword (string, bool) and number fields")


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn] = Field(min_length=1)


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_segments: int | None = Field(None, ge=1, description="merge down to this many segments")


class WriteResponse(BaseModel):
    generation: int = Field(description="the committed generation that holds the change")
    added: int = 0
    deleted: int = 0
    not_found: int = 0
    segments: int


class Merger:
    """Runs the merge policy on one background thread, one merge at a time."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def kick(self) -> None:
        with self._lock:
            if self.running or not self.index.pending_merges:
                return
            self._thread = threading.Thread(target=self._run, name="lsr-merge", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self.index.merge()
            self.error = None
        except Exception as e:  # reported on /metrics and /ready; the index is unchanged
            self.error = str(e)


def living_status(index: Any) -> dict[str, Any]:
    """generation / segments / pending merges of a living index ({} for a plain one, which /ready
    reports as before)."""
    if not hasattr(index, "generation"):
        return {}
    return {
        "generation": index.generation,
        "segments": len(index.segments),
        "pending_merges": index.pending_merges,
    }


def living_metrics(index: Any) -> str:
    """Prometheus gauges of the index: generation, segments, pending merges, live documents."""
    if index is None:
        return ""
    st = living_status(index) or {"generation": 0, "segments": 1, "pending_merges": 0}
    lines = []
    for name, help_text, value in (
        ("lsr_index_generation", "Committed generation being searched.", st["generation"]),
        ("lsr_index_segments", "Segments of that generation.", st["segments"]),
        ("lsr_index_pending_merges", "Merges the merge policy asks for now.", st["pending_merges"]),
        ("lsr_index_live_documents", "Documents a search can return.", index.n_docs),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    return "\n".join(lines) + "\n"


def add_write_routes(app: FastAPI, state: Any, ready_index: Any) -> None:
    settings = state.settings

    def writer(request: Request) -> Any:
        if not settings.writable:
            raise HTTPException(
                status_code=403, detail="this service is read-only (start it with LSR_WRITABLE=1)"
            )
        if settings.api_key and request.headers.get("x-api-key") != settings.api_key:
            raise HTTPException(status_code=403, detail="writes need the X-API-Key header")
        if not state.ready:
            raise HTTPException(status_code=503, detail="index not loaded yet")
        return state.index

    from fastapi import Depends

    write_index = Depends(writer)

    def merger() -> Merger:
        if getattr(state, "merger", None) is None:
            state.merger = Merger(state.index)
        return state.merger

    def answer(index: Any, **counts: int) -> dict:
        return {"generation": index.generation, "segments": len(index.segments), **counts}

    @app.post("/documents", response_model=WriteResponse, responses={403: {}, 400: {}})
    def add_documents(req: AddRequest, index: Any = write_index) -> dict:
        """Add or replace documents (text, encoded with the index's encoder, or vectors) and commit."""
        if len(req.documents) > settings.max_batch:
            raise HTTPException(status_code=422, detail=f"at most {settings.max_batch} documents per request")
        texts = [(i, d.text) for i, d in enumerate(req.documents) if d.vector is None]
        for i, d in enumerate(req.documents):
            if (d.text is None) == (d.vector is None):
                raise HTTPException(
                    status_code=422, detail=f"document {i}: give exactly one of text and vector"
                )
        vectors: list[Any] = [d.vector for d in req.documents]
        if texts:
            if state.encoder is None:
                raise HTTPException(status_code=400, detail="this index records no encoder: send vectors")
            enc = state.encoder.encode_documents([t for _, t in texts]).to_dicts()
            for (i, _), v in zip(texts, enc, strict=True):
                vectors[i] = v
        ids = [d.id for d in req.documents]
        docs = [(d.title or "", d.text or "") for d in req.documents]
        meta = [d.metadata for d in req.documents]
        with index.write_lock:  # this request's changes alone, committed before the answer
            try:
                n = index.add(vectors, ids=ids, metadata=meta, documents=docs)
                index.commit()
            except LsrError:
                index.rollback()
                raise
        merger().kick()
        return answer(index, added=n)

    @app.delete("/documents/{doc_id:path}", response_model=WriteResponse, responses={403: {}})
    def delete_document(doc_id: str, index: Any = write_index) -> dict:
        """Delete a document by id and commit (an unknown id is counted in not_found)."""
        with index.write_lock:
            res = index.delete([doc_id])
            index.commit()
        merger().kick()
        return answer(index, **res)

    @app.post("/admin/merge", response_model=WriteResponse, responses={403: {}})
    def merge(req: MergeRequest | None = None, index: Any = write_index) -> dict:
        """Merge segments now (by the policy, or down to max_segments) and commit."""
        index.merge(max_segments=req.max_segments if req else None)
        return answer(index)
