"""The encoder interface every kind implements, and :func:`load_encoder`.

An encoder turns texts into a :class:`~lsr.vectors.SparseBatch` over its vocabulary. Queries and
documents are separate calls because kinds differ there (max lengths, inference-free queries).
Its :meth:`Encoder.config` is a JSON-able dict recorded in every index manifest; searching an
index with text through an encoder whose config differs is refused unless forced.

A saved encoder is a directory with the backbone's files (``config.json``, weights, tokenizer) and
``lsr_encoder.json`` (``{"kind": "splade", ...settings}``; ``"dyvo"`` adds an entity store and a
head, see :mod:`lsr.encoders.dyvo`). A plain masked-LM checkpoint without
that file loads as SPLADE with default settings.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.vectors import SparseBatch, Vocabulary

ENCODER_CONFIG_FILE = "lsr_encoder.json"
_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# Names that resolve to a model shipped inside the package.
BUNDLED_MODELS = {"splade-tiny": _MODELS_DIR / "splade-tiny"}
# Config keys that do not change the vectors, so they are ignored when comparing configs.
ENCODER_KINDS = ("splade", "inference-free", "unicoil", "dyvo")
_NON_SEMANTIC_KEYS = {"model_path", "batch_size", "device", "threads"}


class Encoder(ABC):
    """Text -> sparse vectors. Subclasses set ``kind`` and implement the two encode calls."""

    kind: str = "base"

    @property
    @abstractmethod
    def vocab(self) -> Vocabulary:
        """The output vocabulary (term id -> token string)."""

    @abstractmethod
    def encode_documents(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        """Encode documents; row i is texts[i]."""

    @abstractmethod
    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        """Encode queries; row i is texts[i]."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything that determines the vectors: kind, model name, max lengths, pooling, pruning."""

    @abstractmethod
    def save(self, path: str | os.PathLike) -> None:
        """Write the encoder (weights, tokenizer, ``lsr_encoder.json``) to a directory."""

    def with_corpus_stats(self, stats: CorpusStats) -> Encoder:
        """The encoder to encode queries with against a corpus of statistics ``stats``.

        Most kinds ignore corpus statistics and return ``self``. Kinds whose query weights depend on
        the indexed corpus (inference-free with IDF weights) return a new query-side view that owns
        its weights, so one shared encoder serves many indexes (or shards) without being mutated.
        """
        return self

    def to(self, device: str) -> Encoder:
        """Move the network to ``device`` (``"cpu"``, ``"cuda[:N]"``, ``"mps"`` or ``"auto"``) and rebuild
        the encoding caches there; returns self. Vectors do not depend on the device beyond float rounding
        (and GPU autocast when ``precision`` is ``"bfloat16"`` / ``"float16"``)."""
        dev = resolve_device(device)
        module = getattr(self, "train_module", None)
        if module is None:
            return self
        module().to(dev)
        refresh = getattr(self, "refresh", None)
        if refresh is not None:
            refresh()
        return self


DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | None) -> str:
    """``"auto"`` (or None: ``$LSR_DEVICE``, else auto) -> ``"cuda"`` when a CUDA GPU is present, else
    ``"mps"`` on Apple silicon, else ``"cpu"``; an explicit device that is not there is refused."""
    if device is None:
        device = os.environ.get("LSR_DEVICE") or "auto"
    if not isinstance(device, str) or device.split(":")[0] not in DEVICES:
        raise LsrError(f"device must be one of auto, cpu, cuda[:N], mps, not {device!r}")
    if device == "cpu":
        return device
    import torch

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device.startswith("cuda") and not cuda:
        raise LsrError(f"device {device!r}: no CUDA GPU is available here")
    if device == "mps" and not mps:
        raise LsrError("device 'mps': no Apple GPU (MPS) is available here")
    return device


def check_positive_ints(required: dict[str, Any], optional: dict[str, Any] | None = None) -> None:
    """Refuse encoder settings that must be positive integers (``optional`` ones may also be None)."""
    for key, val in required.items():
        if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
            raise LsrError(f"{key} must be a positive integer, got {val!r}")
    for key, val in (optional or {}).items():
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val <= 0):
            raise LsrError(f"{key} must be a positive integer or None, got {val!r}")


def check_max_lengths(model: Any, doc_max_length: int, query_max_length: int) -> None:
    """Refuse max lengths (tokens) beyond the model's position embeddings."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and max(doc_max_length, query_max_length) > limit:
        raise LsrError(
            f"max length {max(doc_max_length, query_max_length)} exceeds the model's {limit} positions"
        )


def resolve_model_path(name_or_path: str) -> str:
    """A bundled name -> its directory; an existing directory -> itself; anything else unchanged
    (then treated as a Hugging Face id)."""
    if name_or_path in BUNDLED_MODELS:
        return str(BUNDLED_MODELS[name_or_path])
    return name_or_path


def read_encoder_config(path: str) -> dict[str, Any]:
    """``lsr_encoder.json`` of a local model directory, or ``{}`` when there is none."""
    cfg_path = os.path.join(path, ENCODER_CONFIG_FILE)
    if os.path.isfile(cfg_path):
        try:
            with open(cfg_path, encoding="utf-8") as f:
                cfg = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise LsrError(f"{cfg_path}: cannot read encoder config ({e})") from None
        if not isinstance(cfg, dict):
            raise LsrError(f"{cfg_path}: expected a JSON object")
        return cfg
    return {}


def load_encoder(name_or_path: str, **options: Any) -> Encoder:
    """Load an encoder: bundled name, local directory, or Hugging Face id (see :func:`lsr.load_encoder`).

    ``device`` (``"auto"`` by default: ``$LSR_DEVICE``, else a GPU when present, else the CPU) is where
    the network runs; it is not a setting of the vectors, so configs never record it."""
    device = resolve_device(options.pop("device", None))
    enc = _load_encoder(name_or_path, **options)
    if device != "cpu":
        enc.to(device)
    return enc


def _load_encoder(name_or_path: str, **options: Any) -> Encoder:
    if not isinstance(name_or_path, str) or not name_or_path:
        raise LsrError("model name or path must be a non-empty string")
    path = resolve_model_path(name_or_path)
    local = os.path.isdir(path)
    if not local and (os.path.sep in name_or_path and not _looks_like_hub_id(name_or_path)):
        raise LsrError(f"model {name_or_path!r}: no such directory")
    saved = read_encoder_config(path) if local else {}
    if local and not saved:
        from lsr.encoders.layouts import detect_layout, load_layout

        layout = detect_layout(path)
        if layout is None:
            raise LsrError(
                f"model {name_or_path!r}: unknown checkpoint layout (no {ENCODER_CONFIG_FILE}, sentence-transformers "
                "modules.json or Hugging Face config.json in the folder)"
            )
        if layout in ("sentence-transformers", "opensearch", "naver-split"):
            return load_layout(path, layout, name_or_path, dict(options))
    kind = options.pop("kind", None) or saved.get("kind", "splade")
    settings = {k: v for k, v in saved.items() if k != "kind"}
    settings.update(options)
    if kind == "splade" and settings.get("query_encoder"):
        from lsr.encoders.layouts import load_asymmetric_saved

        return load_asymmetric_saved(path, name_or_path, settings)
    if kind == "splade":
        from lsr.encoders.splade import SpladeEncoder

        return SpladeEncoder.from_pretrained(path, name=name_or_path, **settings)
    if kind == "inference-free":
        from lsr.encoders.inference_free import InferenceFreeEncoder

        return InferenceFreeEncoder.from_pretrained(path, name=name_or_path, **settings)
    if kind == "unicoil":
        from lsr.encoders.unicoil import UniCoilEncoder

        return UniCoilEncoder.from_pretrained(path, name=name_or_path, **settings)
    if kind == "dyvo":
        from lsr.encoders.dyvo import DyVoEncoder

        return DyVoEncoder.from_pretrained(path, name=name_or_path, **settings)
    raise LsrError(
        f"model {name_or_path!r}: unknown encoder kind {kind!r} (known: {', '.join(ENCODER_KINDS)})"
    )


def _looks_like_hub_id(s: str) -> bool:
    # "org/name" with exactly one slash and no leading ./ or / is a hub id, not a path.
    return s.count("/") == 1 and not s.startswith((".", "/", "~"))


def configs_match(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The keys on which two encoder configs differ in a way that changes the vectors."""
    keys = (set(recorded) | set(current)) - _NON_SEMANTIC_KEYS
    return sorted(k for k in keys if recorded.get(k) != current.get(k))


@dataclass(frozen=True)
class CorpusStats:
    """Statistics of an indexed corpus that some query encoders need (never the index itself).

    ``vocab``: the corpus's term vocabulary; ``df``: int64 document frequency of each of its terms
    (documents whose vector holds the term); ``n_docs``: documents in the corpus. Computed by the
    index from its posting lists (:meth:`lsr.index.Index.document_frequencies`) and handed in by
    :class:`lsr.Retriever`; for several shards, the sums of theirs (global statistics).
    """

    vocab: Vocabulary
    df: np.ndarray
    n_docs: int

    def df_over(self, vocab: Vocabulary) -> np.ndarray:
        """Document frequencies re-indexed by the term ids of ``vocab`` (0 for terms the corpus lacks)."""
        if vocab is self.vocab or vocab.tokens is self.vocab.tokens:
            return np.asarray(self.df, np.int64)
        get = self.vocab.get
        rows = np.fromiter((get(t) for t in vocab.tokens), np.int64, count=len(vocab))
        df = np.asarray(self.df, np.int64)
        return np.where(rows >= 0, df[np.maximum(rows, 0)], 0)


def load_recorded_encoder(cfg: dict[str, Any]) -> Encoder:
    """Load the encoder an index manifest records (``manifest["encoder"]``): from its recorded local
    directory when it still exists, else by its recorded name; the recorded settings override the
    saved ones, and the recorded name is kept so configs compare equal."""
    settings = {k: v for k, v in cfg.items() if k not in ("kind", "model", "model_path")}
    where = (
        cfg.get("model_path")
        if cfg.get("model_path") and os.path.isdir(cfg["model_path"])
        else cfg.get("model")
    )
    encoder = load_encoder(where, kind=cfg.get("kind"), **settings)
    if cfg.get("model"):
        encoder.name = cfg["model"]  # type: ignore[attr-defined]  # keep the recorded name for comparisons
    return encoder
