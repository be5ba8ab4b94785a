"""``lsr entities``: build an entity store from a corpus, make a DyVo encoder, inspect matches.

* ``lsr entities build --corpus CORPUS --model splade-tiny --output DIR`` mines recurring multi-word
  terms and names from a BEIR corpus (or a BEIR folder / bundled dataset name) and embeds them with
  the model's input word-piece embeddings (:func:`lsr.entities.build_entity_store`).
* ``lsr entities dyvo --model splade-tiny --entities DIR --output MODEL_DIR`` saves a DyVo encoder
  (that SPLADE model + that store + an untrained head); ``--model MODEL_DIR`` then works in every
  other command.
* ``lsr entities match --entities DIR TEXT...`` prints each text's candidate entities.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

from lsr.cli.common import check_positive, summary
from lsr.errors import LsrError


def run(args: Any) -> int:
    if args.entities_command == "build":
        return _build(args)
    if args.entities_command == "dyvo":
        return _dyvo(args)
    if args.entities_command == "match":
        return _match(args)
    raise LsrError("lsr entities needs a subcommand: build, dyvo or match (see lsr entities --help)")


def _corpus_path(corpus: str) -> str:
    """A corpus file, or the corpus of a BEIR folder / bundled dataset name (``scifact``)."""
    if os.path.isfile(corpus):
        return corpus
    from lsr.eval.datasets import BUNDLED, beir_folder

    if corpus in BUNDLED or os.path.isdir(corpus):
        return beir_folder(corpus).corpus
    raise LsrError(f"{corpus}: no such corpus file, BEIR folder or bundled dataset")


def _check_output(path: str, overwrite: bool) -> None:
    if os.path.exists(path):
        if not overwrite:
            raise LsrError(f"{path}: already exists (pass --overwrite to replace it)")
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _build(args: Any) -> int:
    import lsr
    from lsr.entities import build_entity_store
    from lsr.texts import iter_texts

    check_positive("max-entities", args.max_entities)
    check_positive("min-df", args.min_df)
    corpus = _corpus_path(args.corpus)
    _check_output(args.output, args.overwrite)
    t0 = time.perf_counter()
    texts = (r.full_text for r in iter_texts(corpus))
    store = build_entity_store(
        texts,
        lsr.load_encoder(args.model),
        max_entities=args.max_entities,
        min_df=args.min_df,
        max_ngram=args.max_ngram,
        names=not args.no_names,
    )
    store.save(args.output)
    summary(
        f"mined {len(store)} entities (dim {store.dim}) from {corpus} in {time.perf_counter() - t0:.1f} s "
        f"-> {args.output}"
    )
    return 0


def _dyvo(args: Any) -> int:
    import lsr
    from lsr.encoders.dyvo import DyVoEncoder
    from lsr.entities import EntityStore

    check_positive("top-n", args.top_n)
    _check_output(args.output, args.overwrite)
    base = lsr.load_encoder(args.model)
    if getattr(base, "kind", None) != "splade":
        raise LsrError(f"--model must be a SPLADE model, {args.model!r} is {getattr(base, 'kind', '?')!r}")
    settings: dict[str, Any] = {
        "entity_top_n": args.top_n,
        "entity_fuzzy": not args.no_fuzzy,
        "entity_max_edits": args.max_edits,
        "entity_bm25": args.bm25,
    }
    enc = DyVoEncoder.from_splade(base, EntityStore.load(args.entities), **settings)
    enc.save(args.output)
    summary(
        f"DyVo encoder: {args.model} + {len(enc.store)} entities, vocabulary {len(enc.vocab)} terms "
        f"-> {args.output} (use it as --model {args.output})"
    )
    return 0


def _match(args: Any) -> int:
    from lsr.entities import EntityMatcher, EntityStore

    store = EntityStore.load(args.entities)
    m = EntityMatcher(
        store, top_n=args.top_n, fuzzy=not args.no_fuzzy, max_edits=args.max_edits, bm25=args.bm25
    )
    for text in args.texts:
        cands = [
            {
                "id": store.entities[c.entity].id,
                "name": store.entities[c.entity].name,
                "source": c.source,
                "quality": round(c.quality, 4),
                "count": c.count,
            }
            for c in m.match(text)
        ]
        print(json.dumps({"text": text, "candidates": cands}, ensure_ascii=False))
    return 0
