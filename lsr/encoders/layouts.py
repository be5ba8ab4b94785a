"""Checkpoint layouts other libraries write, loaded as lsr encoders (no network, no sentence-transformers needed).

:func:`detect_layout` names the layout of a local folder; :func:`load_layout` builds the encoder:

* ``"sentence-transformers"``: a sentence-transformers (v5+) ``SparseEncoder`` folder, ``modules.json`` with
  ``MLMTransformer`` (or ``Transformer`` with ``transformer_task="fill-mask"``) + ``SpladePooling`` -> kind
  ``splade`` with the pooling, activation and max length it records; or one ``Router`` module whose query
  route is a ``SparseStaticEmbedding`` (inference-free: kind ``inference-free`` with its weights as the query
  table) or a second MLM + ``SpladePooling`` (separate query encoder), the document route an MLM +
  ``SpladePooling``. Any other module (dense ``Pooling``, ``SparseAutoEncoder``...) is refused.
* ``"opensearch"``: OpenSearch's inference-free models (``opensearch-neural-sparse-encoding-doc-*``): a
  masked LM and ``idf.json`` (token -> query weight) -> kind ``inference-free`` with that table; documents as
  OpenSearch encodes them (max pooling, special tokens weigh 0, up to the tokenizer's max length).
* ``"naver-split"``: naver/splade's training code with separate encoders writes the document MLM at the root and
  the query MLM in ``query/`` -> kind ``splade`` with a separate query encoder (:class:`AsymmetricSpladeEncoder`).
  Releases that ship the two as two repositories (``...-doc`` / ``...-query``) load with
  ``load_encoder(doc_dir, query_encoder=query_dir)``.
* ``"masked-lm"`` (plain Hugging Face masked LM, e.g. ``naver/splade-v3``: SPLADE max pooling) and ``"lsr"``
  (``lsr_encoder.json``) load through :func:`lsr.encoders.base.load_encoder` as before.

:func:`export_sentence_transformers` writes an lsr SPLADE or inference-free encoder as a SparseEncoder
folder (``lsr export --format sentence-transformers``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np

from lsr.encoders.base import ENCODER_CONFIG_FILE, Encoder
from lsr.errors import LsrError
from lsr.vectors import SparseBatch, Vocabulary

LAYOUTS = ("lsr", "sentence-transformers", "opensearch", "naver-split", "masked-lm")
_MLM_MODULES = ("MLMTransformer", "Transformer")
# sentence-transformers v5 names (v6 still resolves them), so exported folders load in both
_ST_TYPES = {
    "mlm": "sentence_transformers.sparse_encoder.models.MLMTransformer",
    "pooling": "sentence_transformers.sparse_encoder.models.SpladePooling",
    "router": "sentence_transformers.models.Router",
    "static": "sentence_transformers.sparse_encoder.models.SparseStaticEmbedding",
}
_HUGE = 10**6  # a tokenizer's model_max_length above this means "not set" (transformers uses 1e30)


def detect_layout(path: str) -> str | None:
    """The layout of local folder ``path`` (one of :data:`LAYOUTS`), or None when it is none of them."""
    has = lambda *p: os.path.isfile(os.path.join(path, *p))  # noqa: E731
    if has(ENCODER_CONFIG_FILE):
        return "lsr"
    if has("modules.json"):
        return "sentence-transformers"
    if has("config.json") and has("idf.json"):
        return "opensearch"
    if has("config.json") and has("query", "config.json"):
        return "naver-split"
    if has("config.json"):
        return "masked-lm"
    return None


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise LsrError(f"{path}: missing") from None
    except (OSError, json.JSONDecodeError) as e:
        raise LsrError(f"{path}: cannot read ({e})") from None


def _max_length(folder: str, default: int | None = None) -> int:
    """A Transformer module's max length in tokens: ``max_seq_length`` of ``sentence_bert_config.json``
    (sentence-transformers v5), else the tokenizer's ``model_max_length`` (v6), clamped to the positions."""
    length = None
    st_cfg = os.path.join(folder, "sentence_bert_config.json")
    if os.path.isfile(st_cfg):
        length = _read_json(st_cfg).get("max_seq_length")
    tok_cfg = os.path.join(folder, "tokenizer_config.json")
    if length is None and os.path.isfile(tok_cfg):
        m = _read_json(tok_cfg).get("model_max_length")
        if isinstance(m, (int, float)) and 0 < m < _HUGE:
            length = int(m)
    positions = None
    cfg = os.path.join(folder, "config.json")
    if os.path.isfile(cfg):
        positions = _read_json(cfg).get("max_position_embeddings")
    if length is None:
        length = default or min(positions or 512, 512)
    if positions:
        length = min(int(length), int(positions))
    return int(length)


def _short_type(type_name: Any) -> str:
    return str(type_name).rsplit(".", 1)[-1]


def _mlm_settings(root: str, folder: str, pooling_dir: str) -> dict[str, Any]:
    """Settings of an MLM Transformer module in ``folder`` followed by a SpladePooling in ``pooling_dir``."""
    st_cfg = os.path.join(folder, "sentence_bert_config.json")
    task = _read_json(st_cfg).get("transformer_task") if os.path.isfile(st_cfg) else None
    if task not in (None, "fill-mask"):
        raise LsrError(
            f"{root}: its Transformer module has transformer_task={task!r}; a SPLADE model needs 'fill-mask'"
        )
    pool = _read_json(os.path.join(pooling_dir, "config.json"))
    pooling = pool.get("pooling_strategy", "max")
    activation = pool.get("activation_function", "relu")
    from lsr.encoders.splade import ACTIVATIONS, POOLINGS

    if pooling not in POOLINGS:
        raise LsrError(
            f"{root}: unsupported SpladePooling pooling_strategy {pooling!r} (lsr supports {POOLINGS})"
        )
    if activation not in ACTIVATIONS:
        raise LsrError(
            f"{root}: unsupported SpladePooling activation_function {activation!r} (lsr supports {ACTIVATIONS})"
        )
    length = _max_length(folder)
    out: dict[str, Any] = {"pooling": pooling, "doc_max_length": length, "query_max_length": length}
    if activation != "relu":
        out["activation"] = activation
    return out


def _route(root: str, names: Sequence[str], types: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """A Router route -> ("mlm", settings incl. _dir) or ("static", {_dir})."""
    short = [_short_type(types.get(n)) for n in names]
    if short == ["SparseStaticEmbedding"]:
        return "static", {"_dir": os.path.join(root, names[0])}
    if len(short) == 2 and short[0] in _MLM_MODULES and short[1] == "SpladePooling":
        d = os.path.join(root, names[0])
        return "mlm", {**_mlm_settings(root, d, os.path.join(root, names[1])), "_dir": d}
    raise LsrError(f"{root}: unsupported sentence-transformers route {' + '.join(short) or '(empty)'}")


def sentence_transformers_settings(root: str) -> dict[str, Any]:
    """lsr settings of a SparseEncoder folder: kind, pooling, activation, max lengths and where the parts are
    (``_doc_dir``, ``_query_dir``, ``_table``: internal keys, not encoder settings)."""
    modules = _read_json(os.path.join(root, "modules.json"))
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise LsrError(f"{root}/modules.json: expected a list of modules")
    modules = sorted(modules, key=lambda m: m.get("idx", 0))
    short = [_short_type(m.get("type")) for m in modules]
    dirs = [os.path.join(root, m.get("path") or "") for m in modules]
    cfg_st = os.path.join(root, "config_sentence_transformers.json")
    if os.path.isfile(cfg_st):
        prompts = _read_json(cfg_st).get("prompts") or {}
        if any(prompts.values()):
            raise LsrError(f"{root}: prompts {prompts} are not supported (lsr encodes the text as given)")
    if len(short) == 2 and short[0] in _MLM_MODULES and short[1] == "SpladePooling":
        return {"kind": "splade", **_mlm_settings(root, dirs[0], dirs[1]), "_doc_dir": dirs[0]}
    if short == ["Router"]:
        rc = _read_json(os.path.join(dirs[0], "router_config.json"))
        types, structure = rc.get("types") or {}, rc.get("structure") or {}
        if set(structure) != {"query", "document"}:
            raise LsrError(f"{root}: a Router needs 'query' and 'document' routes, found {sorted(structure)}")
        qkind, q = _route(dirs[0], structure["query"], types)
        dkind, d = _route(dirs[0], structure["document"], types)
        if dkind != "mlm":
            raise LsrError(f"{root}: the document route must be an MLM Transformer + SpladePooling")
        settings = {k: v for k, v in d.items() if k != "_dir"}
        if qkind == "static":
            settings["query_max_length"] = _static_max_length(q["_dir"]) + 2  # lsr counts [CLS] and [SEP]
            return {"kind": "inference-free", **settings, "_doc_dir": d["_dir"], "_table": q["_dir"]}
        if {k: v for k, v in q.items() if k not in ("_dir", "doc_max_length", "query_max_length")} != {
            k: v for k, v in settings.items() if k not in ("doc_max_length", "query_max_length")
        }:
            raise LsrError(f"{root}: query and document SpladePooling differ (lsr uses one pooling for both)")
        settings["query_max_length"] = q["query_max_length"]
        return {"kind": "splade", **settings, "_doc_dir": d["_dir"], "_query_dir": q["_dir"]}
    raise LsrError(
        f"{root}: unsupported sentence-transformers modules {' + '.join(short)} (lsr loads MLMTransformer + "
        "SpladePooling, or a Router with SparseStaticEmbedding / MLM queries)"
    )


def _static_max_length(folder: str) -> int:
    tok_cfg = os.path.join(folder, "tokenizer_config.json")
    m = _read_json(tok_cfg).get("model_max_length") if os.path.isfile(tok_cfg) else None
    return int(m) if isinstance(m, (int, float)) and 0 < m < _HUGE else _HUGE


def _idf_table(idf_path: str, tokenizer: Any, n: int) -> np.ndarray:
    """An ``idf.json`` (token -> weight) as a float32 table over the tokenizer's ids (absent tokens: 0)."""
    idf = _read_json(idf_path)
    if not isinstance(idf, dict):
        raise LsrError(f"{idf_path}: expected a JSON object of token -> weight")
    table = np.zeros(n, np.float32)
    tokens = list(idf)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    for tok, i in zip(tokens, ids, strict=True):
        w = idf[tok]
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not np.isfinite(w) or w < 0:
            raise LsrError(f"{idf_path}: weight of {tok!r} must be a finite number >= 0, got {w!r}")
        if i is not None and 0 <= i < n:
            table[i] = w
    return table


def _static_table(folder: str, root: str, tokenizer: Any, n: int) -> np.ndarray:
    """The weights of a SparseStaticEmbedding module (its safetensors ``weight``, or the idf.json it names)."""
    cfg_path = os.path.join(folder, "config.json")
    cfg = _read_json(cfg_path) if os.path.isfile(cfg_path) else {}
    ref = cfg.get("path")
    if isinstance(ref, str) and ref.endswith(".json"):
        for cand in (os.path.join(folder, ref), os.path.join(root, os.path.basename(ref)), ref):
            if os.path.isfile(cand):
                return _idf_table(cand, tokenizer, n)
        raise LsrError(f"{folder}: its idf file {ref!r} is not in the folder")
    st = os.path.join(folder, "model.safetensors")
    if os.path.isfile(st):
        from safetensors.numpy import load_file

        weight = load_file(st).get("weight")
    elif os.path.isfile(os.path.join(folder, "pytorch_model.bin")):
        import torch

        weight = torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu", weights_only=True)
        weight = weight.get("weight")
        weight = None if weight is None else weight.float().numpy()
    else:
        raise LsrError(f"{folder}: SparseStaticEmbedding without weights (model.safetensors)")
    if weight is None or weight.ndim != 1:
        raise LsrError(f"{folder}: SparseStaticEmbedding weights must be one vector 'weight'")
    if len(weight) != n:
        raise LsrError(f"{folder}: {len(weight)} query weights for a vocabulary of {n}")
    return np.asarray(weight, np.float32)


def _layout_settings(path: str, layout: str) -> dict[str, Any]:
    if layout == "sentence-transformers":
        return sentence_transformers_settings(path)
    if layout == "opensearch":
        length = _max_length(path)
        return {
            "kind": "inference-free",
            "pooling": "max",
            "drop_special": True,
            "doc_max_length": length,
            "query_max_length": length,
            "_doc_dir": path,
            "_idf": os.path.join(path, "idf.json"),
        }
    if layout == "naver-split":
        return {"kind": "splade", "_doc_dir": path, "_query_dir": os.path.join(path, "query")}
    raise LsrError(f"{path}: layout {layout!r} is not loaded here")


def load_layout(path: str, layout: str, name: str, options: dict[str, Any]) -> Encoder:
    """Build the encoder of folder ``path`` in ``layout`` (see the module docs); ``options`` override the
    settings read from the folder (e.g. ``doc_max_length=512``), as for :func:`lsr.load_encoder`."""
    from lsr.encoders.splade import SpladeEncoder

    found = _layout_settings(path, layout)
    kind = options.pop("kind", None) or found["kind"]
    if kind != found["kind"]:
        raise LsrError(f"model {name!r}: a {layout} folder of kind {found['kind']!r} cannot load as {kind!r}")
    settings = {k: v for k, v in found.items() if not k.startswith("_") and k != "kind"}
    options.pop("query_encoder", None)  # recorded by config(); the folder says where the parts are
    options.pop("doc_encoder", None)
    settings.update(options)
    doc_dir, query_dir = found["_doc_dir"], found.get("_query_dir")
    if kind == "splade":
        if query_dir is None:
            enc = SpladeEncoder.from_pretrained(doc_dir, name=name, **settings)
            enc.path = os.path.abspath(path)
            return enc
        return AsymmetricSpladeEncoder.load(path, doc_dir, query_dir, name, settings)
    # inference-free: documents through the MLM, queries from the table
    from lsr.encoders.inference_free import InferenceFreeEncoder

    qmax = settings.pop("query_max_length", 256)
    settings.pop("query_weights", None)
    settings.pop("query_top_k", None)
    want_sha = settings.pop("table_sha256", None)
    settings["query_max_length"] = settings.get("doc_max_length", 256)  # the MLM never sees a query
    doc = SpladeEncoder.from_pretrained(doc_dir, name=name, **settings)
    doc.path = os.path.abspath(path)
    n = len(doc.vocab)
    if "_idf" in found:
        table = _idf_table(found["_idf"], doc.tokenizer, n)
    else:
        from transformers import AutoTokenizer

        try:
            qtok = AutoTokenizer.from_pretrained(found["_table"])
        except Exception:  # a SparseStaticEmbedding folder may carry no tokenizer: the document one is it
            qtok = doc.tokenizer
        if qtok.get_vocab() != doc.tokenizer.get_vocab():
            raise LsrError(f"model {name!r}: query and document tokenizers differ")
        table = _static_table(found["_table"], path, doc.tokenizer, n)
    if table.min() < 0 or not np.all(np.isfinite(table)):
        raise LsrError(f"model {name!r}: query weights must be finite and >= 0")
    enc = InferenceFreeEncoder(doc, query_weights="table", table=table, query_max_length=qmax)
    got = enc.config().get("table_sha256")
    if want_sha is not None and got != want_sha:
        raise LsrError(f"model {path!r}: its query weight table ({got}) is not the recorded one ({want_sha})")
    return enc


class AsymmetricSpladeEncoder(Encoder):
    """SPLADE with separate query and document masked LMs over one vocabulary (naver/splade's
    ``shared_weights=False``, a sentence-transformers Router of two MLMs). Both sides use the same settings
    (pooling, activation, top-k...), each its own max length. Saved as lsr: the document MLM at the root,
    the query MLM in ``query/``, ``lsr_encoder.json`` with ``"query_encoder": "query"``."""

    kind = "splade"

    def __init__(self, doc: Any, query: Any, root: str, query_encoder: str, doc_encoder: str = "") -> None:
        if doc.vocab != query.vocab:
            raise LsrError(f"model {root!r}: the query and document encoders have different vocabularies")
        self.doc, self.query = doc, query
        self.path = os.path.abspath(root) if os.path.isdir(root) else root
        self.name = doc.name
        self.tokenizer = doc.tokenizer
        self.query_encoder = query_encoder
        self.doc_encoder = doc_encoder

    @classmethod
    def load(
        cls, root: str, doc_dir: str, query_dir: str, name: str, settings: dict[str, Any]
    ) -> AsymmetricSpladeEncoder:
        from lsr.encoders.splade import SpladeEncoder

        if not os.path.isdir(query_dir):
            raise LsrError(f"model {name!r}: query encoder {query_dir!r}: no such directory")
        doc = SpladeEncoder.from_pretrained(doc_dir, name=name, **settings)
        query = SpladeEncoder.from_pretrained(query_dir, name=name, **settings)
        rel = lambda d: os.path.relpath(d, root) if os.path.isdir(root) else d  # noqa: E731
        qrel = rel(query_dir)
        drel = "" if os.path.abspath(doc_dir) == os.path.abspath(root) else rel(doc_dir)
        return cls(doc, query, root, qrel, drel)

    @property
    def vocab(self) -> Vocabulary:
        return self.doc.vocab

    def encode_documents(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        return self.doc.encode_documents(texts, show_progress)

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        return self.query.encode_queries(texts, show_progress)

    def prepare_queries(self) -> None:
        """Build the query encoder's fast path now (see :meth:`SpladeEncoder.prepare_queries`)."""
        prepare = getattr(self.query, "prepare_queries", None)
        if prepare is not None:
            prepare()

    def config(self) -> dict[str, Any]:
        cfg = dict(self.doc.config())
        cfg["model_path"] = self.path
        cfg["query_encoder"] = self.query_encoder
        if self.doc_encoder:
            cfg["doc_encoder"] = self.doc_encoder
        return cfg

    def save(self, path: str | os.PathLike) -> None:
        path = os.fspath(path)
        self.doc.save(path)
        self.query.save(os.path.join(path, "query"))
        cfg = {k: v for k, v in self.config().items() if k not in ("model", "model_path", "doc_encoder")}
        cfg["query_encoder"] = "query"
        with open(os.path.join(path, ENCODER_CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)

    def train_module(self) -> Any:
        import torch

        return torch.nn.ModuleDict({"doc": self.doc.model, "query": self.query.model})

    def forward_train(self, texts: Sequence[str], what: str) -> Any:
        return (self.query if what == "query" else self.doc).forward_train(texts, what)

    def refresh(self) -> None:
        self.doc.refresh()
        self.query.refresh()


def load_asymmetric_saved(path: str, name: str, settings: dict[str, Any]) -> Encoder:
    """An lsr-saved SPLADE with ``query_encoder`` (a subfolder, or any folder for two-repository releases)."""
    settings = dict(settings)
    q = settings.pop("query_encoder")
    d = settings.pop("doc_encoder", "") or ""
    if not isinstance(q, str) or not q:
        raise LsrError(f"query_encoder must be a folder, got {q!r}")
    query_dir = q if os.path.isabs(q) or not os.path.isdir(path) else os.path.join(path, q)
    if not os.path.isdir(query_dir) and os.path.isdir(q):
        query_dir = q
    doc_dir = os.path.join(path, d) if d else path
    return AsymmetricSpladeEncoder.load(path, doc_dir, query_dir, name, settings)


# -- export ---------------------------------------------------------------------------------------------
def _write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)


def _write_mlm_module(splade: Any, folder: str, max_length: int) -> None:
    """An MLMTransformer module folder (weights, tokenizer with ``model_max_length``, sentence_bert_config)."""
    os.makedirs(folder, exist_ok=True)
    splade.model.save_pretrained(folder)
    old = splade.tokenizer.model_max_length
    splade.tokenizer.model_max_length = max_length
    try:
        splade.tokenizer.save_pretrained(folder)
    finally:
        splade.tokenizer.model_max_length = old
    _write_json(
        os.path.join(folder, "sentence_bert_config.json"),
        {"max_seq_length": max_length, "do_lower_case": False},
    )


def _write_pooling(splade: Any, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    _write_json(
        os.path.join(folder, "config.json"),
        {"pooling_strategy": splade.pooling, "activation_function": splade.activation},
    )


def _check_exportable(splade: Any) -> None:
    if splade.doc_top_k is not None or splade.query_top_k is not None or splade.threshold > 0:
        raise LsrError(
            "a sentence-transformers SparseEncoder folder cannot record top-k or threshold pruning: load the "
            "encoder with doc_top_k=None, query_top_k=None, threshold=0 to export it"
        )
    if splade.drop_special:
        raise LsrError("a sentence-transformers SpladePooling cannot drop special tokens (drop_special=True)")


def export_sentence_transformers(encoder: Encoder, out: str | os.PathLike) -> str:
    """Write ``encoder`` (kind ``splade``, with or without a separate query encoder, or ``inference-free``
    with a query table) as a sentence-transformers SparseEncoder folder ``out``; returns ``out``.

    Same vectors in ``SparseEncoder.encode_document`` / ``encode_query`` as lsr's (tests check). Equal query and
    document max lengths give one MLMTransformer + SpladePooling; different ones a Router over two copies.
    """
    from lsr.encoders.inference_free import InferenceFreeEncoder
    from lsr.encoders.splade import SpladeEncoder

    out = os.fspath(out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise LsrError(f"{out}: exists and is not an empty directory")
    if isinstance(encoder, InferenceFreeEncoder):
        doc, query, static = encoder.doc_encoder, None, encoder.current_table()
        if static is None:
            raise LsrError(
                "this inference-free encoder weighs queries by the IDF of an index: give it a table first "
                "(bind_index, set_table) to export it"
            )
    elif isinstance(encoder, AsymmetricSpladeEncoder):
        doc, query, static = encoder.doc, encoder.query, None
    elif isinstance(encoder, SpladeEncoder):
        doc, query, static = encoder, None, None
    else:
        raise LsrError(f"kind {encoder.kind!r} cannot be written as a sentence-transformers SparseEncoder")
    _check_exportable(doc)
    os.makedirs(out, exist_ok=True)
    try:
        _write_json(
            os.path.join(out, "config_sentence_transformers.json"),
            {
                "model_type": "SparseEncoder",
                "prompts": {"query": "", "document": ""},
                "default_prompt_name": None,
                "similarity_fn_name": "dot",
            },
        )
        if static is None and query is None and doc.doc_max_length == doc.query_max_length:
            _write_mlm_module(doc, out, doc.doc_max_length)
            _write_pooling(doc, os.path.join(out, "1_SpladePooling"))
            _write_json(
                os.path.join(out, "modules.json"),
                [
                    {"idx": 0, "name": "0", "path": "", "type": _ST_TYPES["mlm"]},
                    {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": _ST_TYPES["pooling"]},
                ],
            )
            return out
        types = {
            "document_0_MLMTransformer": _ST_TYPES["mlm"],
            "document_1_SpladePooling": _ST_TYPES["pooling"],
        }
        _write_mlm_module(doc, os.path.join(out, "document_0_MLMTransformer"), doc.doc_max_length)
        _write_pooling(doc, os.path.join(out, "document_1_SpladePooling"))
        if static is not None:
            qdir = os.path.join(out, "query_0_SparseStaticEmbedding")
            os.makedirs(qdir)
            from safetensors.numpy import save_file

            weight = np.array(static, np.float32)
            specials = [i for i in doc.tokenizer.all_special_ids if 0 <= i < len(weight)]
            weight[specials] = 0.0  # lsr never puts special tokens in a query
            save_file({"weight": weight}, os.path.join(qdir, "model.safetensors"))
            _write_json(os.path.join(qdir, "config.json"), {"frozen": True})
            old = doc.tokenizer.model_max_length
            doc.tokenizer.model_max_length = max(
                1, encoder.query_max_length - 2
            )  # word pieces, no [CLS]/[SEP]
            try:
                doc.tokenizer.save_pretrained(qdir)
            finally:
                doc.tokenizer.model_max_length = old
            structure = {"query": ["query_0_SparseStaticEmbedding"]}
            types["query_0_SparseStaticEmbedding"] = _ST_TYPES["static"]
        else:
            q = query if query is not None else doc
            _write_mlm_module(q, os.path.join(out, "query_0_MLMTransformer"), doc.query_max_length)
            _write_pooling(q, os.path.join(out, "query_1_SpladePooling"))
            structure = {"query": ["query_0_MLMTransformer", "query_1_SpladePooling"]}
            types["query_0_MLMTransformer"] = _ST_TYPES["mlm"]
            types["query_1_SpladePooling"] = _ST_TYPES["pooling"]
        structure["document"] = ["document_0_MLMTransformer", "document_1_SpladePooling"]
        _write_json(
            os.path.join(out, "router_config.json"),
            {
                "types": types,
                "structure": structure,
                "parameters": {"default_route": "document", "allow_empty_key": True},
            },
        )
        _write_json(
            os.path.join(out, "modules.json"),
            [{"idx": 0, "name": "0", "path": "", "type": _ST_TYPES["router"]}],
        )
    except LsrError:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out
