"""Request and response bodies of the HTTP API (pydantic models; they also make /docs)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr


def _utf8(text: str) -> str:
    """Refuse strings that cannot be UTF-8 (a lone surrogate such as ``"\\ud800"`` in the JSON): the
    tokenizer and the JSON response cannot carry them. Raised as a 422 validation error."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"text is not valid Unicode (lone surrogate at character {e.start})") from None
    return text


# Strict types: JSON true is not 1 and "5" is not 5 (422 instead of a silent conversion).
Text = Annotated[StrictStr, AfterValidator(_utf8)]
Params = dict[Text, Any]  # names checked first (400 naming the allowed ones), then values
PARAMS_DOC = (
    "the method's own search parameters only: bmp alpha, beta in (0, 1]; seismic query_cut "
    "(integer 1..1024), heap_factor in (0, 1]; anything else is a 400"
)


class VectorQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vector: dict[Text, StrictFloat] = Field(
        description="{token: weight}, weights finite, >= 0 and <= LSR_MAX_QUERY_WEIGHT (10000)"
    )


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Text | VectorQuery = Field(
        description="text (encoded with the index's encoder) or {'vector': {...}}"
    )
    k: StrictInt = Field(10, description="number of hits, 1 .. LSR_MAX_K")
    method: StrictStr = Field("exact", description="search method")
    params: Params = Field(default_factory=dict, description=PARAMS_DOC)
    filter: dict[str, Any] | None = Field(None, description="metadata filter (living index)")


class BatchSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queries: list[Text | VectorQuery] = Field(description="texts or {'vector': {...}} objects")
    k: StrictInt = 10
    method: StrictStr = "exact"
    params: Params = Field(default_factory=dict, description=PARAMS_DOC)
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
    text: Text
    kind: Literal["query", "document"] = "query"
    top: StrictInt = Field(32, description="how many of the heaviest terms to list in top_terms (1..1000)")


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
    encoder: bool | None = Field(
        None, description="whether text queries work: the index records an encoder (on /ready)"
    )
    generation: int | None = Field(None, description="committed generation being searched (on /ready)")
    segments: int | None = None
    pending_merges: int | None = None


class Error(BaseModel):
    detail: str
