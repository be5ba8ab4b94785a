"""Entity vocabularies for DyVo: the entity store, candidate entity retrieval, and a corpus miner.

An **entity store** is a directory with two files, row i of one describing line i of the other::

    entities.jsonl          one JSON object per line:
                            {"id": "vitamin_d", "name": "vitamin D", "aliases": ["cholecalciferol"],
                             "description": "optional free text (used by the BM25 retriever)"}
    entity_embeddings.npy   float32[n_entities, dim]: one embedding per entity, row i = line i

Ids must be unique non-empty strings without whitespace (they become the terms ``ENT:<id>``).
A user can bring their own store (e.g. Wikipedia entities with Wikipedia2Vec or LaQue embeddings);
:func:`build_entity_store` makes one from a corpus when none is provided: recurring multi-word terms
(word n-grams of non-stopwords found in at least ``min_df`` documents) and recurring acronym-like
names (``HIV``, ``BRCA1``, ``IL-6``), embedded as the mean of the backbone's input word-piece
embeddings of the name (the DyVo paper's simplest variant; with tied input/output embeddings such
an embedding is already comparable with the MLM head's hidden states).

**Candidate retrieval** (:class:`EntityMatcher`) finds the entities a text mentions: every word
n-gram of the normalised text (NFKC, lower case, ``\\w+`` words) is looked up among the normalised
names and aliases (exact); words that are no name word are first mapped to a name word within
``max_edits`` character edits (fuzzy, for words of at least ``min_fuzzy_len`` characters: plurals,
typos, British/American spellings); an optional second retriever (BM25 over names, aliases and
descriptions, through ``bm25s``) adds entities that share words with the text. The ``top_n`` best
candidates are kept: exact before fuzzy before BM25, then by number of mentions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lsr.errors import LsrError

ENTITIES_FILE = "entities.jsonl"
EMBEDDINGS_FILE = "entity_embeddings.npy"
ENTITY_PREFIX = "ENT:"

_WORD = re.compile(r"\w+")
_ID_OK = re.compile(r"^\S+$")
# A small English stop-word list (the usual function words): n-grams never start, end or consist of them.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either et etc
    few for from further had has have having he her here hers herself him himself his how however i
    if in into is it its itself just may me might more most much must my myself neither no nor not
    of off on once only or other our ours ourselves out over own per same shall she should since so
    some such than that the their theirs them themselves then there these they this those through
    thus to too under until up upon us use used using very via was we were what when where whether
    which while who whom whose why will with within without would yet you your yours yourself
    yourselves one two three four five six seven eight nine ten new study studies result results
    shown show shows based among whereas although""".split()
)


def normalize_tokens(text: str) -> list[str]:
    """The matching form of a text: NFKC, lower case, ``\\w+`` words (punctuation and spaces dropped)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


@dataclass
class Entity:
    """One entity: a unique id (no whitespace), a display name, aliases and an optional description."""

    id: str
    name: str
    aliases: list[str] = field(default_factory=list)
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "name": self.name, "aliases": list(self.aliases)}
        if self.description is not None:
            d["description"] = self.description
        return d


class EntityStore:
    """Entities and their embeddings (float32, one row per entity, in the entities' order).

    ``embeddings`` is ``n_entities x dim``. The store is immutable after construction; its
    :meth:`fingerprint` (sha256 over the entities and the embedding bytes) goes into a DyVo
    encoder's config, so an index built with one store refuses text queries encoded with another.
    """

    def __init__(
        self, entities: Sequence[Entity], embeddings: np.ndarray, where: str = "entity store"
    ) -> None:
        entities = list(entities)
        emb = np.asarray(embeddings)
        if emb.ndim != 2:
            raise LsrError(
                f"{where}: embeddings must be a 2-D array (n_entities x dim), got shape {emb.shape}"
            )
        if emb.shape[0] != len(entities):
            raise LsrError(
                f"{where}: {len(entities)} entities but {emb.shape[0]} embedding rows (row i must embed entity i)"
            )
        if emb.shape[1] == 0:
            raise LsrError(f"{where}: embeddings have dimension 0")
        if emb.dtype.kind not in "fiu":
            raise LsrError(f"{where}: embeddings must be numbers, got dtype {emb.dtype}")
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if emb.size and not np.all(np.isfinite(emb)):
            row = int(np.flatnonzero(~np.all(np.isfinite(emb), axis=1))[0])
            raise LsrError(f"{where}: embedding row {row} ({entities[row].id!r}) is not finite")
        index: dict[str, int] = {}
        for i, e in enumerate(entities):
            _check_entity(e, f"{where}: entity {i}")
            if e.id in index:
                raise LsrError(f"{where}: duplicate entity id {e.id!r} (entities {index[e.id]} and {i})")
            index[e.id] = i
        self.entities = entities
        self.embeddings = emb
        self._index = index
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.entities)

    def __repr__(self) -> str:
        return f"EntityStore({len(self)} entities, dim={self.dim})"

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.embeddings.shape[1])

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.entities]

    def position(self, entity_id: str) -> int:
        """Row of ``entity_id`` (raises :class:`LsrError` when unknown)."""
        try:
            return self._index[entity_id]
        except KeyError:
            raise LsrError(f"unknown entity id {entity_id!r}") from None

    def fingerprint(self) -> str:
        """sha256 (hex, first 16 chars) over the entities' JSON lines and the embeddings' shape and bytes."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for e in self.entities:
                h.update(json.dumps(e.to_json(), sort_keys=True, ensure_ascii=False).encode())
                h.update(b"\n")
            h.update(str(self.embeddings.shape).encode())
            h.update(self.embeddings.tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    # -- files -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write ``entities.jsonl`` and ``entity_embeddings.npy`` into directory ``path`` (created)."""
        path = os.fspath(path)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, ENTITIES_FILE), "w", encoding="utf-8") as f:
            for e in self.entities:
                f.write(json.dumps(e.to_json(), ensure_ascii=False))
                f.write("\n")
        np.save(os.path.join(path, EMBEDDINGS_FILE), self.embeddings, allow_pickle=False)

    @classmethod
    def load(cls, path: str | os.PathLike, embeddings: str | os.PathLike | None = None) -> EntityStore:
        """Load a store: a directory holding both files, or an entities JSONL file plus ``embeddings``
        (a ``.npy``; default: ``entity_embeddings.npy`` beside the JSONL)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            jsonl = os.path.join(path, ENTITIES_FILE)
            npy = os.fspath(embeddings) if embeddings is not None else os.path.join(path, EMBEDDINGS_FILE)
        else:
            jsonl = path
            npy = (
                os.fspath(embeddings)
                if embeddings is not None
                else os.path.join(os.path.dirname(path), EMBEDDINGS_FILE)
            )
        if not os.path.isfile(jsonl):
            raise LsrError(
                f"{jsonl}: no such entities file (an entity store is a directory with {ENTITIES_FILE})"
            )
        if not os.path.isfile(npy):
            raise LsrError(f"{npy}: no such embeddings file (float32 n_entities x dim .npy)")
        entities = read_entities(jsonl)
        try:
            emb = np.load(npy, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise LsrError(f"{npy}: unreadable .npy ({e})") from None
        return cls(entities, emb, where=f"{jsonl} + {os.path.basename(npy)}")


def _check_entity(e: Entity, where: str) -> None:
    if not isinstance(e.id, str) or not e.id or not _ID_OK.match(e.id):
        raise LsrError(f"{where}: id must be a non-empty string without whitespace, got {e.id!r}")
    if not isinstance(e.name, str) or not normalize_tokens(e.name):
        raise LsrError(f"{where} ({e.id!r}): name must be a string with at least one word, got {e.name!r}")
    if not isinstance(e.aliases, list) or not all(isinstance(a, str) for a in e.aliases):
        raise LsrError(f"{where} ({e.id!r}): aliases must be a list of strings")
    if e.description is not None and not isinstance(e.description, str):
        raise LsrError(f"{where} ({e.id!r}): description must be a string")


def read_entities(path: str | os.PathLike) -> list[Entity]:
    """Read an entities JSONL file; a malformed line raises :class:`LsrError` with its line number."""
    from lsr.vectors import iter_jsonl

    path = os.fspath(path)
    out = []
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        unknown = set(obj) - {"id", "name", "aliases", "description"}
        if unknown:
            raise LsrError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if "id" not in obj or "name" not in obj:
            raise LsrError(f'{where}: an entity needs "id" and "name"')
        eid = obj["id"]
        if isinstance(eid, int) and not isinstance(eid, bool):
            eid = str(eid)
        e = Entity(eid, obj["name"], obj.get("aliases") or [], obj.get("description"))
        _check_entity(e, where)
        out.append(e)
    return out


def load_entity_store(path: str | os.PathLike, embeddings: str | os.PathLike | None = None) -> EntityStore:
    """Load an :class:`EntityStore` from a directory (or an entities JSONL file plus ``embeddings``)."""
    return EntityStore.load(path, embeddings)


# ---------------------------------------------------------------------------------------------
# Candidate retrieval


@dataclass(frozen=True)
class Candidate:
    """A candidate entity of a text: its row in the store, how it was found and how well.

    ``source`` is ``"exact"``, ``"fuzzy"`` or ``"bm25"``; ``quality`` is 1.0 for an exact match,
    ``1 - edits / characters`` for a fuzzy one, and the BM25 score for BM25; ``count`` is the number
    of mentions (n-gram matches) in the text.
    """

    entity: int
    source: str
    quality: float
    count: int


_SOURCE_RANK = {"exact": 0, "fuzzy": 1, "bm25": 2}


class EntityMatcher:
    """Finds an entity store's candidate entities in texts (see the module docs for the rules).

    ``top_n``: candidates kept per text (the DyVo head scores only those). ``fuzzy``: map words that
    are no name word to a name word within ``max_edits`` (0, 1 or 2) character edits, for words of
    at least ``min_fuzzy_len`` characters. ``bm25``: also retrieve ``bm25_k`` entities by BM25 over
    names, aliases and descriptions (needs the ``bm25s`` package, in the ``eval`` extra).
    """

    def __init__(
        self,
        store: EntityStore,
        top_n: int = 32,
        fuzzy: bool = True,
        max_edits: int = 1,
        min_fuzzy_len: int = 5,
        bm25: bool = False,
        bm25_k: int = 8,
    ) -> None:
        for key, val, lo in (("top_n", top_n, 1), ("min_fuzzy_len", min_fuzzy_len, 1), ("bm25_k", bm25_k, 1)):
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise LsrError(f"{key} must be an integer >= {lo}, got {val!r}")
        if max_edits not in (0, 1, 2):
            raise LsrError(f"max_edits must be 0, 1 or 2, got {max_edits!r}")
        self.store = store
        self.top_n = top_n
        self.fuzzy = bool(fuzzy) and max_edits > 0
        self.max_edits = max_edits
        self.min_fuzzy_len = min_fuzzy_len
        self.bm25 = bool(bm25)
        self.bm25_k = bm25_k
        self._names: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i, e in enumerate(store.entities):
            for s in [e.name, *e.aliases]:
                key = tuple(normalize_tokens(s))
                if key and i not in self._names[key]:
                    self._names[key].append(i)
        self._max_len = max((len(k) for k in self._names), default=0)
        self._name_words = {w for k in self._names for w in k}
        self._deletes: dict[str, list[str]] = defaultdict(list)
        if self.fuzzy:
            for w in sorted(self._name_words):
                if len(w) >= self.min_fuzzy_len and not w.isdigit():
                    for v in _deletes(w, self.max_edits):
                        self._deletes[v].append(w)
        self._fuzzy_cache: dict[str, tuple[str, int] | None] = {}
        self._bm25: Any = None

    def config(self) -> dict[str, Any]:
        """The settings that change which candidates a text gets."""
        return {
            "top_n": self.top_n,
            "fuzzy": self.fuzzy,
            "max_edits": self.max_edits,
            "min_fuzzy_len": self.min_fuzzy_len,
            "bm25": self.bm25,
            "bm25_k": self.bm25_k,
        }

    def _fuzzy_word(self, w: str) -> tuple[str, int] | None:
        """The closest name word to ``w`` within ``max_edits`` edits (ties: the alphabetically first)."""
        hit = self._fuzzy_cache.get(w, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        best: tuple[str, int] | None = None
        if len(w) >= self.min_fuzzy_len and not w.isdigit() and w not in STOPWORDS:
            seen: set[str] = set()
            for v in _deletes(w, self.max_edits):
                for cand in self._deletes.get(v, ()):
                    if cand in seen:
                        continue
                    seen.add(cand)
                    d = _edit_distance(w, cand, self.max_edits)
                    if d <= self.max_edits and (best is None or (d, cand) < (best[1], best[0])):
                        best = (cand, d)
        if len(self._fuzzy_cache) > 200_000:
            self._fuzzy_cache.clear()
        self._fuzzy_cache[w] = best
        return best

    def match(self, text: str) -> list[Candidate]:
        """Candidate entities of ``text``, best first, at most ``top_n``."""
        if not isinstance(text, str):
            raise LsrError(f"entity matching takes a str, got {type(text).__name__}")
        words = normalize_tokens(text)
        canon: list[str] = []
        edits: list[int] = []
        for w in words:
            if w in self._name_words or not self.fuzzy:
                canon.append(w)
                edits.append(0)
            else:
                f = self._fuzzy_word(w)
                canon.append(f[0] if f else w)
                edits.append(f[1] if f else 0)
        found: dict[int, list[Any]] = {}  # entity -> [source, quality, count]
        n = len(canon)
        for i in range(n):
            for length in range(1, min(self._max_len, n - i) + 1):
                ents = self._names.get(tuple(canon[i : i + length]))
                if not ents:
                    continue
                e_sum = sum(edits[i : i + length])
                if e_sum:
                    chars = sum(len(c) for c in canon[i : i + length])
                    source, quality = "fuzzy", 1.0 - e_sum / chars
                else:
                    source, quality = "exact", 1.0
                for ent in ents:
                    cur = found.get(ent)
                    if cur is None:
                        found[ent] = [source, quality, 1]
                    else:
                        cur[2] += 1
                        if (_SOURCE_RANK[source], -quality) < (_SOURCE_RANK[cur[0]], -cur[1]):
                            cur[0], cur[1] = source, quality
        if self.bm25 and len(found) < self.top_n and words:
            for ent, score in self._bm25_search(text):
                if ent not in found:
                    found[ent] = ["bm25", score, 0]
        ranked = sorted(found.items(), key=lambda kv: (_SOURCE_RANK[kv[1][0]], -kv[1][1], -kv[1][2], kv[0]))[
            : self.top_n
        ]
        return [Candidate(ent, s, float(q), int(c)) for ent, (s, q, c) in ranked]

    def match_ids(self, text: str) -> list[str]:
        """Entity ids of :meth:`match` (a convenience for inspection and tests)."""
        return [self.store.entities[c.entity].id for c in self.match(text)]

    def _bm25_search(self, text: str) -> list[tuple[int, float]]:
        if self._bm25 is None:
            try:
                import bm25s
            except ImportError:
                raise LsrError(
                    "BM25 entity retrieval needs the bm25s package: pip install -e '.[eval]' (or bm25s)"
                ) from None
            corpus = [" ".join([e.name, *e.aliases, e.description or ""]) for e in self.store.entities]
            retriever = bm25s.BM25()
            retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
            self._bm25 = (bm25s, retriever)
        bm25s, retriever = self._bm25
        q = bm25s.tokenize([text], stopwords="en", show_progress=False)
        if not q.vocab:
            return []
        k = min(self.bm25_k, len(self.store))
        docs, scores = retriever.retrieve(q, k=k, show_progress=False)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


def _deletes(word: str, max_edits: int) -> set[str]:
    """``word`` and every string made from it by deleting up to ``max_edits`` characters (SymSpell)."""
    out = {word}
    frontier = {word}
    for _ in range(max_edits):
        nxt = set()
        for w in frontier:
            for i in range(len(w)):
                nxt.add(w[:i] + w[i + 1 :])
        out |= nxt
        frontier = nxt
    return out


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``limit + 1`` once it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


# ---------------------------------------------------------------------------------------------
# Mining a store from a corpus


def mine_entities(
    texts: Iterable[str],
    max_entities: int = 20_000,
    min_df: int = 3,
    min_ngram: int = 2,
    max_ngram: int = 4,
    names: bool = True,
    max_df_fraction: float = 0.5,
) -> list[Entity]:
    """Recurring multi-word terms and names of a corpus, as entities (no embeddings yet).

    Multi-word terms: word n-grams (``min_ngram`` .. ``max_ngram`` words) with no stop word, at least
    one word of 3+ letters, found in at least ``min_df`` documents and at most ``max_df_fraction`` of
    them; an n-gram is dropped when a longer one containing it occurs in >= 90% of its documents
    ("type 2" inside "type 2 diabetes"); terms never span punctuation but hyphens and slashes, and
    all-capital terms made of words that are ordinary lower-case words elsewhere (section headers such
    as "RESULTS") are skipped; a term and its plural are one entity, the rarer form an alias. Names (``names=True``): single words with two or more capitals
    or a capital and a digit (``HIV``, ``BRCA1``, ``IL-6`` as one hyphenated word), in at least
    ``min_df`` documents. Ranked by document frequency x words, capped at ``max_entities``. The display
    name is the most frequent surface form; the id is the normalised words joined by ``_``.
    """
    for key, val in (("max_entities", max_entities), ("min_df", min_df), ("min_ngram", min_ngram)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise LsrError(f"{key} must be a positive integer, got {val!r}")
    if isinstance(max_ngram, bool) or not isinstance(max_ngram, int) or max_ngram < min_ngram:
        raise LsrError(f"max_ngram must be an integer >= min_ngram ({min_ngram}), got {max_ngram!r}")
    df: Counter[tuple[str, ...]] = Counter()
    lower_df: Counter[str] = Counter()  # documents where a word appears in lower case
    surface: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    name_re = re.compile(r"\b[\w]+(?:-[\w]+)*\b")
    n_docs = 0
    for text in texts:
        n_docs += 1
        text = unicodedata.normalize("NFKC", text)
        spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        words = [text[s:e].casefold() for s, e in spans]
        ok = [w not in STOPWORDS and not _is_noise(w) for w in words]
        # a term never spans punctuation other than a hyphen or a slash ("95% CI", "cells. The")
        joins = [
            _JOIN.fullmatch(text[spans[i][1] : spans[i + 1][0]]) is not None for i in range(len(spans) - 1)
        ]
        seen: set[tuple[str, ...]] = set()
        for i in range(len(words)):
            if not ok[i]:
                continue
            for j in range(i + 1, min(i + max_ngram, len(words)) + 1):
                if not ok[j - 1] or (j - 1 > i and not joins[j - 2]):
                    break  # every longer n-gram holds this word or gap too
                if j - i < min_ngram:
                    continue
                key = tuple(words[i:j])
                if not any(sum(c.isalpha() for c in w) >= 3 for w in key):
                    continue
                if key not in seen:
                    seen.add(key)
                    df[key] += 1
                surface[key][text[spans[i][0] : spans[j - 1][1]]] += 1
        if names:
            lower_df.update({text[s:e] for s, e in spans if text[s:e].islower()})
            for m in name_re.finditer(text):
                tok = m.group(0)
                caps = sum(c.isupper() for c in tok)
                if len(tok) >= 2 and (caps >= 2 or (caps >= 1 and any(c.isdigit() for c in tok))):
                    key = tuple(normalize_tokens(tok))
                    if not key or len(key) > max_ngram or all(w.isdigit() or w in _NOT_NAMES for w in key):
                        continue
                    if key not in seen:
                        seen.add(key)
                        df[key] += 1
                    surface[key][tok] += 1
    max_df = max(min_df, int(max_df_fraction * n_docs))
    keep = {}
    for k, d in df.items():
        if not min_df <= d <= max_df:
            continue
        top = max(surface[k].items(), key=lambda x: (x[1], x[0]))[0]
        if top.isupper() and not any(c.isdigit() for c in top):
            # all capitals: a section header ("RESULTS", "MAIN OUTCOME MEASURES") when the words are
            # ordinary lower-case words elsewhere (in >= 5% as many documents); an acronym
            # ("DNA", "HIV") otherwise
            if len(k) > 1 or lower_df[k[0]] >= max(min_df, 0.05 * d):
                continue
        keep[k] = d
    dominated = set()
    for k, d in keep.items():
        if len(k) > 1:
            for sub in (k[:-1], k[1:]):
                if sub in keep and d >= 0.9 * keep[sub]:
                    dominated.add(sub)
    # singular and plural of the last word ("T cell", "T cells") are one entity, the other an alias
    groups: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
    for k in keep:
        if k not in dominated:
            groups[k[:-1] + (_singular(k[-1]),)].append(k)
    merged = []
    for members in groups.values():
        members.sort(key=lambda k: (-keep[k], k))
        merged.append((members, sum(keep[k] for k in members)))
    merged.sort(key=lambda md: (-md[1] * len(md[0][0]), md[0][0]))
    out = []
    for members, _ in merged[:max_entities]:
        names_ = [max(surface[k].items(), key=lambda x: (x[1], x[0]))[0] for k in members]
        out.append(Entity("_".join(members[0]), names_[0], names_[1:]))
    return out


# Abstract section headers, written in capitals but no names.
_NOT_NAMES = STOPWORDS | frozenset(
    """abstract aim aims background conclusion conclusions context design discussion findings importance
    interpretation introduction method methods objective objectives participants purpose result setting
    summary""".split()
)
_JOIN = re.compile(r"[ \t]*[-/]?[ \t]*|\s+")


def _singular(w: str) -> str:
    """A crude singular of an English word, only to group a term with its plural."""
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def _is_noise(w: str) -> bool:
    """Words that never belong to a mined term: long numbers (years, counts, identifiers) and ``_``."""
    return (w.isdigit() and len(w) > 4) or w.strip("_") == ""


def name_embeddings(model: Any, tokenizer: Any, names: Sequence[str], batch: int = 4096) -> np.ndarray:
    """Mean input word-piece embedding of each name: float32 (len(names), hidden).

    Uses ``model.get_input_embeddings()``; special tokens are not included. A name that tokenizes
    to nothing (impossible for a store's names, which have a word) gets the zero vector.
    """
    import torch

    table = model.get_input_embeddings().weight.detach().float()
    out = np.zeros((len(names), table.shape[1]), np.float32)
    with torch.inference_mode():
        for s in range(0, len(names), batch):
            ids = tokenizer(list(names[s : s + batch]), add_special_tokens=False)["input_ids"]
            for r, row in enumerate(ids):
                if row:
                    out[s + r] = table[torch.tensor(row)].mean(dim=0).numpy()
    return out


def build_entity_store(
    texts: Iterable[str],
    encoder: Any,
    max_entities: int = 20_000,
    min_df: int = 3,
    min_ngram: int = 2,
    max_ngram: int = 4,
    names: bool = True,
) -> EntityStore:
    """Mine entities from ``texts`` (:func:`mine_entities`) and embed them with ``encoder``'s backbone
    (:func:`name_embeddings`). ``encoder`` is a loaded SPLADE/DyVo encoder or a model name."""
    if isinstance(encoder, str):
        from lsr.encoders.base import load_encoder

        encoder = load_encoder(encoder)
    model, tokenizer = getattr(encoder, "model", None), getattr(encoder, "tokenizer", None)
    if model is None or tokenizer is None:
        raise LsrError("build_entity_store needs an encoder with a .model and a .tokenizer (SPLADE or DyVo)")
    ents = mine_entities(texts, max_entities, min_df, min_ngram, max_ngram, names)
    if not ents:
        raise LsrError(
            f"no recurring terms found (min_df={min_df}): use a bigger corpus or a smaller --min-df"
        )
    return EntityStore(ents, name_embeddings(model, tokenizer, [e.name for e in ents]), where="mined store")
