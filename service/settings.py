"""Service settings, from environment variables prefixed ``LSR_`` (pydantic-settings).

``LSR_INDEX`` (required) names the index directory; the rest have defaults:

=========================  ========  ==========================================================
variable                   default   meaning
=========================  ========  ==========================================================
``LSR_API_KEY``            unset     when set, every request but /health, /ready, /metrics, / and
                                     the docs must carry it in the ``X-API-Key`` header
``LSR_CORS_ORIGINS``       ``[]``    allowed origins (JSON list); CORS is off when empty
``LSR_MAX_K``              1000      largest ``k`` a request may ask for
``LSR_MAX_QUERY_CHARS``    2000      longest text query (characters)
``LSR_MAX_QUERY_TERMS``    4096      most terms in a vector query
``LSR_MAX_QUERY_WEIGHT``   10000     largest weight of a vector query term (larger: 422), so that
                                     float32 scores stay finite
``LSR_MAX_BATCH``          256       most queries in one /search/batch request
``LSR_MAX_BODY_BYTES``     1000000   largest request body (larger: 413)
``LSR_MAX_DRAIN_BYTES``    16000000  an oversized body up to this size is read and discarded before
                                     the 413, so the client reads the status, not a reset
``LSR_SEARCH_THREADS``     2         size of the thread pool that runs searches and encodings
``LSR_TORCH_THREADS``      auto      torch threads per encoding (default: cores / search threads,
                                     so concurrent encodings do not oversubscribe the CPU)
``LSR_SNIPPET_CHARS``      240       length of the text snippet returned with each hit
``LSR_WRITABLE``           0         1: open the index as its writer and serve POST /documents,
                                     DELETE /documents/{id}, POST /admin/merge (403 otherwise)
``LSR_RAY``                unset     hold a sharded index's shards in Ray actors (``local``, ``auto``,
                                     ``HOST:PORT``); a dead shard actor makes searches answer 503
``LSR_REPLICAS``           1         Ray actors per shard (a search survives one dying)
=========================  ========  ==========================================================
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LSR_", extra="ignore")

    index: str = Field(description="index directory to serve")
    api_key: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    max_k: int = Field(1000, ge=1)
    max_query_chars: int = Field(2000, ge=1)
    max_query_terms: int = Field(4096, ge=1)
    max_query_weight: float = Field(1e4, gt=0, allow_inf_nan=False)
    max_batch: int = Field(256, ge=1)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_drain_bytes: int = Field(16_000_000, ge=0)
    search_threads: int = Field(2, ge=1)
    torch_threads: int | None = Field(None, ge=1)
    snippet_chars: int = Field(240, ge=0)
    warmup: bool = True
    writable: bool = False
    ray: str | None = None  # a sharded index's shards in Ray actors: local, auto, HOST:PORT
    replicas: int = Field(1, ge=1)  # actors per shard with ray
