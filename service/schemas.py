"""Request and response bodies of the HTTP API (pydantic models; they also make /docs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class VectorQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vector: dict[str, float] = Field(description="{token: weight}, weights finite and >= 0")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str | VectorQuery = Field(
        description="text (encoded with the index's encoder) or {'vector': {...}}"
    )
    k: int = Field(10, description="number of hits, 1 .. LSR_MAX_K")
    method: str = Field("exact", description="search method")
    params: dict[str, Any] = Field(default_factory=dict, description="method parameters")
    filter: dict[str, Any] | None = Field(None, description="metadata filter (living index)")


class BatchSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queries: list[str | VectorQuery] = Field(description="texts or {'vector': {...}} objects")
    k: int = 10
    method: str = "exact"
    params: dict[str, Any] = Field(default_factory=dict)
    filter: dict[str, Any] | None = Field(None, description="metadata filter, applied to every query")


class Hit(BaseModel):
    id: str
    score: float
    title: str | None = None
    snippet: str | None = None


class SearchResponse(BaseModel):
    hits: list[Hit]
    took_ms: float = Field(description="server time for encoding and search, milliseconds")
    method: str
    unknown_tokens: int = Field(0, description="query tokens not in the index vocabulary (skipped)")


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse]
    took_ms: float
    method: str


class EncodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    kind: Literal["query", "document"] = "query"
    top: int = Field(32, description="how many of the heaviest terms to list in top_terms (1..1000)")


class TermWeight(BaseModel):
    token: str
    weight: float


class EncodeResponse(BaseModel):
    vector: dict[str, float]
    top_terms: list[TermWeight]
    nnz: int
    took_ms: float


class Document(BaseModel):
    id: str
    title: str
    text: str


class Status(BaseModel):
    status: str
    detail: str | None = None
    methods: list[str] | None = Field(None, description="search methods the index serves (on /ready)")
    generation: int | None = Field(None, description="committed generation being searched (on /ready)")
    segments: int | None = None
    pending_merges: int | None = None


class Error(BaseModel):
    detail: str
