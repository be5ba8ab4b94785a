"""``lsr`` entry point: parses arguments and dispatches to a subcommand module.

Only argparse is imported here; each subcommand imports what it needs (torch, numba) when it runs,
so ``lsr --help`` answers at once. Bad input raises :class:`lsr.errors.LsrError`, printed as one
line ``lsr: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "encode": ("lsr.cli.encode", "encode a BEIR corpus or queries file into sparse vectors (JSONL)"),
    "index": ("lsr.cli.index_cmd", "build an index from vectors (JSONL) or from a corpus with --model"),
    "search": ("lsr.cli.search", "search an index with query vectors or query texts; writes a TREC run"),
    "bench": ("lsr.cli.bench", "measure per-query latency, QPS and recall against exact search"),
    "info": ("lsr.cli.info", "show what an index holds"),
    "serve": ("lsr.cli.serve", "serve an index over HTTP (FastAPI + uvicorn): search API and a search page"),
    "demo": (
        "lsr.cli.demo",
        "encode, index and search the bundled SciFact with the bundled model; print nDCG@10",
    ),
    "eval": (
        "lsr.cli.eval_cmd",
        "evaluate a model on a BEIR dataset: metrics, latency, BM25 and fusion baselines, report",
    ),
    "train": (
        "lsr.cli.train",
        "fine-tune an encoder (SPLADE, uniCOIL, inference-free, DyVo) on a BEIR train split; resumable",
    ),
    "entities": (
        "lsr.cli.entities",
        "DyVo entity vocabularies: mine an entity store from a corpus, make a DyVo encoder, show matches",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    from lsr import __version__

    parser = argparse.ArgumentParser(
        prog="lsr",
        description="Learned sparse retrieval: encode text with SPLADE, index it, search it.",
    )
    parser.add_argument("--version", action="version", version=f"lsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Arguments are declared here (argparse only), so --help never imports a subcommand.
        _ARGS[name](p)
    return parser


def _args_encode(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="splade-tiny",
        help="bundled name, local directory or Hugging Face id (default: splade-tiny)",
    )
    p.add_argument("--input", required=True, help="BEIR corpus or queries file (.jsonl or .jsonl.gz)")
    p.add_argument("--output", required=True, help="vectors file to write (.jsonl or .jsonl.gz)")
    p.add_argument(
        "--queries", action="store_true", help="encode as queries (query max length, query pruning)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    p.add_argument("--max-length", type=int, default=None, help="override the model's max length in tokens")
    p.add_argument("--top-k", type=int, default=None, help="keep only the k heaviest terms of each vector")
    p.add_argument(
        "--precision", choices=["float32", "bfloat16"], default=None, help="vocabulary projection precision"
    )


def _args_index(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help="vectors JSONL (.gz ok), or a BEIR corpus with --model")
    p.add_argument("--output", required=True, help="index directory to create")
    p.add_argument("--model", default=None, help="encode a BEIR corpus on the fly with this model")
    p.add_argument("--quantization", choices=["float32", "uint16", "uint8"], default="float32")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index directory")
    p.add_argument(
        "--batch-size", type=int, default=32, help="texts per forward pass when encoding (default 32)"
    )
    p.add_argument(
        "--precision", choices=["float32", "bfloat16"], default=None, help="encoder projection precision"
    )
    p.add_argument(
        "--methods",
        default="all",
        help="search methods the index must serve, comma-separated: exact, maxscore, bmp, seismic, or all "
        "(default: all; each adds the parts it needs, see `lsr info`)",
    )
    p.add_argument(
        "--reorder",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="renumber documents by graph bisection (default: on when bmp or seismic is built)",
    )
    p.add_argument(
        "--bmp-block-size", type=int, default=None, help="BMP block size in documents (default 16)"
    )
    p.add_argument(
        "--seismic-n-postings", type=int, default=None, help="Seismic: postings kept per term (default 2000)"
    )
    p.add_argument(
        "--seismic-block-size", type=int, default=None, help="Seismic: documents per block (default 32)"
    )


def _add_method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="exact", help="exact, maxscore, bmp or seismic (default: exact)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a method parameter, repeatable: bmp alpha, beta; seismic query_cut, heap_factor",
    )


def _args_search(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="index directory")
    p.add_argument(
        "--queries",
        required=True,
        help="query vectors (JSONL) or BEIR queries (text, encoded with the index's encoder)",
    )
    p.add_argument("--k", type=int, default=10)
    _add_method_args(p)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", default="-", help="TREC run file to write (default: standard output)")
    p.add_argument("--tag", default="lsr", help="run tag, the last TREC column")
    p.add_argument(
        "--model",
        default=None,
        help="encode text queries with this model instead of the index's recorded one",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="search even if --model's settings differ from the index's encoder",
    )


def _args_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True)
    p.add_argument("--queries", required=True, help="query vectors (JSONL) or BEIR queries (text)")
    p.add_argument("--k", type=int, default=10)
    _add_method_args(p)
    p.add_argument(
        "--threads", type=int, default=1, help="threads for the batch QPS run (latency is per query)"
    )
    p.add_argument(
        "--repeats", type=int, default=1, help="timed passes over the queries (median latency per query)"
    )
    p.add_argument("--warmup", type=int, default=50, help="queries run before timing (JIT and page cache)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N queries")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _args_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("index", metavar="DIR", help="index directory")
    p.add_argument("--json", action="store_true", help="print the manifest summary as JSON")


def _args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="demo-output", help="working directory (default: ./demo-output)")
    p.add_argument("--model", default="splade-tiny")
    p.add_argument(
        "--dataset", default="scifact", help="bundled name or BEIR folder (default: bundled SciFact)"
    )
    p.add_argument("--limit", type=int, default=None, help="index only the first N documents (a quick look)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default=None)
    p.add_argument("--threads", type=int, default=1)


def _args_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="index directory to serve")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (each maps the same index)"
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def _args_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", help="BEIR folder, bundled name (scifact) or ir-datasets id (beir/scifact/test)"
    )
    p.add_argument("--model", default="splade-tiny", help="bundled name, local directory or Hugging Face id")
    p.add_argument("--output", help="directory for runs, report.json, report.md and plots")
    p.add_argument(
        "--methods", default=None, help="comma-separated search methods (default: every available one)"
    )
    p.add_argument("--k", type=int, default=1000, help="documents retrieved per query (default 1000)")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("DIR1", "DIR2"),
        help="compare two eval outputs with ranx's paired significance test",
    )
    p.add_argument(
        "--cache-dir", default=None, help="encoding cache (default: $LSR_CACHE_DIR or ~/.cache/lsr/eval)"
    )
    p.add_argument("--split", default="test", help="qrels split of a BEIR folder (default: test)")
    p.add_argument("--threads", type=int, default=1, help="threads for the batch search (default 1)")
    p.add_argument("--batch-size", type=int, default=256, help="documents per encoding chunk (default 256)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default=None)
    p.add_argument(
        "--params", default=None, help='method parameters as JSON, e.g. \'{"bmp": {"alpha": 0.9}}\''
    )
    p.add_argument(
        "--bm25",
        choices=["auto", "pyserini", "bm25s", "none"],
        default="auto",
        help="BM25 baseline backend (default auto: pyserini when it can run, else bm25s)",
    )
    p.add_argument(
        "--pyserini-python",
        default=None,
        help="Python interpreter of a venv with pyserini (default: $LSR_PYSERINI_PYTHON)",
    )
    p.add_argument("--warmup", type=int, default=50, help="untimed queries before timing each method")
    p.add_argument(
        "--torch-threads", type=int, default=None, help="torch threads for encoding (default: torch's)"
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def _args_train(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="splade-tiny", help="starting encoder: bundled name, directory or HF id"
    )
    p.add_argument(
        "--kind",
        default=None,
        help="build this encoder kind from --model's weights (e.g. unicoil, inference-free); default: the model's own",
    )
    p.add_argument("--data", required=True, help="BEIR folder or bundled dataset name (e.g. scifact)")
    p.add_argument("--output", required=True, help="directory for the trained model, checkpoints and logs")
    p.add_argument("--split", default="train", help="qrels split to train on (default: train)")
    p.add_argument(
        "--negatives",
        default="bm25",
        help="hard negatives: bm25, model (the starting model's top-k), none, or a TSV file (default: bm25)",
    )
    p.add_argument("--n-negatives", type=int, default=1, help="hard negatives per query and step (default 1)")
    p.add_argument(
        "--negatives-depth", type=int, default=50, help="sample negatives from this top-k (default 50)"
    )
    p.add_argument(
        "--teacher",
        default=None,
        help="teacher scores: 'fusion' (BM25 + the starting model, min-max fused over the train queries), "
        "a TSV qid docid score, or JSON {qid: {docid: score}}",
    )
    p.add_argument(
        "--temperature",
        default="learn",
        help="student score temperature: a number, calibrate (minimises the starting loss) or learn "
        "(log tau trained from the calibrated value; default: learn)",
    )
    p.add_argument(
        "--no-false-negative-mask",
        action="store_true",
        help="contrastive: let in-batch documents relevant to a query count as its negatives",
    )
    p.add_argument("--loss", default="contrastive", choices=["contrastive", "margin_mse", "kl"])
    p.add_argument("--no-in-batch", action="store_true", help="contrastive: no in-batch negatives")
    p.add_argument("--batch-size", type=int, default=8, help="queries per step (default 8)")
    p.add_argument(
        "--steps", type=int, default=None, help="total steps (default: --epochs passes over the pairs)"
    )
    p.add_argument(
        "--epochs", type=float, default=1.0, help="passes over the (query, positive) pairs (default 1)"
    )
    p.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (default 5e-5)")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up (default 0)")
    p.add_argument(
        "--embedding-lr-scale",
        type=float,
        default=1.0,
        help="learning-rate factor of the tied embedding/decoder (0 freezes it; default 1)",
    )
    p.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clipping (0: off; default 1)")
    p.add_argument("--reg", default="flops", choices=["flops", "l1", "idf_flops", "none"])
    p.add_argument("--lambda-q", type=float, default=1e-3, help="query regulariser weight (default 1e-3)")
    p.add_argument("--lambda-d", type=float, default=1e-3, help="document regulariser weight (default 1e-3)")
    p.add_argument(
        "--reg-warmup-steps",
        type=int,
        default=None,
        help="quadratic warm-up of the regularisers (default: a third of the steps)",
    )
    p.add_argument(
        "--target-doc-nnz",
        default="start",
        help="adapt lambda_d to hold documents at N non-zeros: a number, start (the starting model's) "
        "or none (fixed lambda_d; default: start)",
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)"
    )
    r = p.add_mutually_exclusive_group()
    r.add_argument("--no-resume", action="store_true", help="start over even if --output has checkpoints")
    r.add_argument(
        "--resume", action="store_true", help="resume the run in --output even if its settings differ"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument(
        "--dev-split", default=None, help="qrels split to select checkpoints on (default: dev when present)"
    )
    p.add_argument(
        "--dev-fraction",
        type=float,
        default=0.1,
        help="without a dev split, hold out this fraction of the train queries as dev (0: none; default 0.1)",
    )
    p.add_argument(
        "--dev-candidates",
        type=int,
        default=10,
        help="dev search over the dev qrels documents + BM25 top-N of each dev query (0: the whole "
        "corpus; default 10)",
    )
    p.add_argument(
        "--learn-query-weights", action="store_true", help="inference-free: learn the query weight table too"
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="evaluate on dev every N steps (default: 4 times after step 0; 0: at the start and end only)",
    )
    p.add_argument(
        "--doc-max-length", type=int, default=None, help="override the document max length in tokens"
    )
    p.add_argument(
        "--query-max-length", type=int, default=None, help="override the query max length in tokens"
    )


def _args_entities(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="entities_command", metavar="SUBCOMMAND")
    b = sub.add_parser(
        "build",
        help="mine recurring multi-word terms and names of a corpus into an entity store",
        description="Mine recurring multi-word terms and names of a BEIR corpus into an entity store "
        "(entities.jsonl + entity_embeddings.npy), embedded with the model's input word-piece embeddings.",
    )
    b.add_argument("--corpus", required=True, help="BEIR corpus file, BEIR folder or bundled name (scifact)")
    b.add_argument("--model", default="splade-tiny", help="model whose input embeddings embed the names")
    b.add_argument("--output", required=True, help="entity store directory to write")
    b.add_argument("--max-entities", type=int, default=20_000, help="keep at most N entities (default 20000)")
    b.add_argument("--min-df", type=int, default=3, help="documents a term must occur in (default 3)")
    b.add_argument("--max-ngram", type=int, default=4, help="longest multi-word term in words (default 4)")
    b.add_argument("--no-names", action="store_true", help="skip single acronym-like names (HIV, BRCA1)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    d = sub.add_parser(
        "dyvo",
        help="save a DyVo encoder: a SPLADE model + an entity store (untrained head)",
        description="Save a DyVo encoder directory from a SPLADE model and an entity store; use it as "
        "--model in encode, index, search and eval.",
    )
    d.add_argument("--model", default="splade-tiny", help="SPLADE model: bundled name, directory or hub id")
    d.add_argument("--entities", required=True, help="entity store directory")
    d.add_argument("--output", required=True, help="encoder directory to write")
    d.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    m = sub.add_parser("match", help="print the candidate entities of texts (JSON lines)")
    m.add_argument("--entities", required=True, help="entity store directory")
    m.add_argument("texts", nargs="+", metavar="TEXT")
    for q in (d, m):
        q.add_argument("--top-n", type=int, default=32, help="candidate entities per text (default 32)")
        q.add_argument("--no-fuzzy", action="store_true", help="exact name/alias matches only")
        q.add_argument("--max-edits", type=int, default=1, choices=[1, 2], help="fuzzy edits per word")
        q.add_argument(
            "--bm25", action="store_true", help="add BM25 hits over names and descriptions (needs bm25s)"
        )


_ARGS = {
    "train": _args_train,
    "encode": _args_encode,
    "index": _args_index,
    "search": _args_search,
    "bench": _args_bench,
    "info": _args_info,
    "serve": _args_serve,
    "demo": _args_demo,
    "eval": _args_eval,
    "entities": _args_entities,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from lsr.errors import LsrError

    try:
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.run(args) or 0)
    except LsrError as e:
        print(f"lsr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lsr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
